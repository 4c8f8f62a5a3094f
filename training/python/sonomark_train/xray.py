"""The chest X-ray extractor: a small CNN encoder pretrained by group-masked image modelling.

Self-supervised step (no labels): the picture is cut into PATCH x PATCH pixel patches; whole *groups*
of neighbouring patches (random rectangles of 2-4 x 2-4 patches) are hidden until MASK_RATIO of the
patches are, and the network reconstructs the hidden pixels from what is left (loss only on hidden
pixels). Groups rather than scattered patches: a single hidden 8-pixel patch of a chest can be filled
in by interpolating its neighbours; a hidden 16-32-pixel region of a lung field needs the anatomy
around it (ribs, vessels, the hilum, the other lung), which is what the embedding should carry.

The encoder uses GroupNorm, not BatchNorm: it is trained on masked pictures and then run, frozen, on
whole ones; batch statistics gathered on masked inputs would not fit whole pictures.

Interpretable heads: one logistic regression per finding on the frozen embedding (standardised with
the embedding's mean and spread over every picture, which uses no label), fitted with a masked BCE
(an image counts for a finding only where the collection labels it).
"""
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

PATCH = 8
MASK_RATIO = 0.6


def conv_gn(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """S -> S/16 feature map (128 -> 8); embedding = [mean, max] over the map (2 x width[-1]).

    A 4x4 stride-4 stem (a patch embedding) instead of two full-resolution convolutions: on two shared
    CPU cores the whole recipe must train in well under an hour, and the stem costs a tenth of them.
    The convolutions at S/16 widen the receptive field to most of the picture: a masked group is
    reconstructed from anatomy well outside it, and diffuse patterns (bilateral opacities) span both
    lungs. Mean pooling keeps picture-wide patterns, max pooling a local opacity.
    """

    def __init__(self, widths=(32, 48, 64)):
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, w1, 4, stride=4, bias=False),
            nn.GroupNorm(8, w1),
            nn.ReLU(inplace=True),
            conv_gn(w1, w2, 2),
            conv_gn(w2, w2, 1),
            conv_gn(w2, w3, 2),
            conv_gn(w3, w3, 1),
            conv_gn(w3, w3, 1),
        )
        self.width = w3
        self.embedding_dim = 2 * w3

    def feature_map(self, x):
        # Centre the [0, 1] pixels here, so the exported graph takes the serving input unchanged.
        return self.features(x - 0.5)

    def forward(self, x):
        f = self.feature_map(x)
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)


class MaskedModel(nn.Module):
    """Encoder + a light pixel-shuffle decoder (SimMIM-style): predicts every pixel, scored on hidden ones."""

    def __init__(self, encoder, size):
        super().__init__()
        self.encoder = encoder
        self.stride = 16
        self.decoder = nn.Sequential(
            nn.Conv2d(encoder.width, self.stride * self.stride, 1),
            nn.PixelShuffle(self.stride),
        )
        # The hidden pixels' fill value is learned (a mask token in pixel space).
        self.mask_value = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, mask):
        filled = torch.where(mask, self.mask_value.expand_as(x), x)
        return self.decoder(self.encoder.feature_map(filled)) + 0.5


def group_masks(n, size, rng, ratio=MASK_RATIO, patch=PATCH):
    """[n,1,S,S] bool: random rectangles of 2-4 x 2-4 patches hidden until `ratio` of the patches are."""
    g = size // patch
    out = np.zeros((n, g, g), dtype=bool)
    target = int(round(ratio * g * g))
    for k in range(n):
        m = out[k]
        while m.sum() < target:
            h, w = rng.integers(2, 5, size=2)
            y, x = rng.integers(0, g - h + 1), rng.integers(0, g - w + 1)
            m[y:y + h, x:x + w] = True
    mask = np.repeat(np.repeat(out, patch, axis=1), patch, axis=2)
    return torch.from_numpy(mask[:, None])


def augment(x, gen):
    """Label-free views: a small shift (up to 6 px) and a mild gamma; no flip (a chest has a left and a right)."""
    n, _, s, _ = x.shape
    pad = 6
    xp = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
    x = xp[:, :, dy:dy + s, dx:dx + s]
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4)
    return x.clamp(0, 1).pow(gamma)


def warmup_cosine(opt, steps, warmup):
    """Linear warm-up over `warmup` steps, then a cosine decay to zero at `steps`."""
    import math

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def pretrain(encoder, frames, steps, batch, lr, seed, log, curve_every=50):
    """Group-masked pretraining on `frames` (uint8 [N,1,S,S] tensor, no labels). Returns the loss curve."""
    size = frames.shape[-1]
    model = MaskedModel(encoder, size)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = warmup_cosine(opt, steps, max(1, steps // 20))
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    curve, window = [], []
    for step in range(steps):
        idx = torch.randint(0, frames.shape[0], (batch,), generator=gen)
        x = augment(frames[idx].float().div_(255.0), gen)
        mask = group_masks(batch, size, rng)
        recon = model(x, mask)
        loss = ((recon - x) ** 2)[mask].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        window.append(loss.item())
        if (step + 1) % curve_every == 0 or step == steps - 1:
            curve.append({"step": step + 1, "loss": float(np.mean(window))})
            log(f"[ssl] step {step + 1}/{steps} masked MSE {curve[-1]['loss']:.5f}")
            window = []
    encoder.eval()
    return curve


def embed(encoder, frames, batch=256):
    encoder.eval()
    out = []
    with torch.no_grad():
        for s in range(0, frames.shape[0], batch):
            out.append(encoder(frames[s:s + batch].float().div_(255.0)))
    return torch.cat(out)


def fit_heads(z, y, weight_decay=1e-2, iters=200):
    """Per-finding logistic regressions on standardised embeddings z [N,D], masked BCE on y [N,K] (nan: unlabelled).

    Returns (W [K,D], b [K]) on the standardised scale.
    """
    k = y.shape[1]
    w = torch.zeros(k, z.shape[1], requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    labelled = ~torch.isnan(y)
    target = torch.nan_to_num(y)
    counts = labelled.sum(0).clamp(min=1)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = z @ w.T + b
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * labelled
        loss = (bce.sum(0) / counts).sum() + weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


class XrayExtractor(nn.Module):
    """The serving contract: frames [N,1,S,S] in [0,1] -> biomarkers [N,K] probabilities, embedding [N,D].

    The standardisation of the embedding is folded into the heads' weights, so the graph is the encoder
    and one linear layer.
    """

    def __init__(self, encoder, mean, std, w, b):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(w / std)
            self.head.bias.copy_(b - (w / std) @ mean)

    def forward(self, frames):
        e = self.encoder(frames)
        return torch.sigmoid(self.head(e)), e


class Classifier(nn.Module):
    """The anchor comparison's network: the encoder and one logit, trained end to end."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embedding_dim, 1)

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(1)


def finetune(encoder, frames, y, steps, batch, lr, seed):
    """Encoder + head trained end to end on (frames uint8, y 0/1) with BCE; returns the classifier (eval)."""
    torch.manual_seed(seed)
    model = Classifier(encoder)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = warmup_cosine(opt, steps, max(1, steps // 10))
    gen = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(y, dtype=torch.float32)
    for _ in range(steps):
        idx = torch.randint(0, frames.shape[0], (min(batch, frames.shape[0]),), generator=gen)
        x = augment(frames[idx].float().div_(255.0), gen)
        loss = F.binary_cross_entropy_with_logits(model(x), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model


def predict(model, frames, batch=256):
    out = []
    with torch.no_grad():
        for s in range(0, frames.shape[0], batch):
            out.append(model(frames[s:s + batch].float().div_(255.0)))
    return torch.cat(out).numpy()
