"""Training loops: contrastive pretraining, MIL biomarker training, and the
end-to-end diagnosis baseline. All three share the backbone and the sampler.
"""
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment, device_augment, random_crop_resize
from .model import Extractor


def lse_pool(frame_logits, per_clip, r=5.0):
    """Log-mean-exp pooling of frame logits per clip: between mean (r→0) and max (r→∞).

    A clip is positive when some of its frames show the finding, which a plain
    mean would dilute and a hard max would make brittle on a handful of frames.
    """
    z = frame_logits.view(-1, per_clip, frame_logits.shape[-1])
    return (torch.logsumexp(r * z, dim=1) - math.log(per_clip)) / r


def cosine_lr(step, total, base, warmup=20):
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def source_sampler(data, train_idx, cfg):
    """Sampling weights over train_idx: uniform, or with cfg["source_balance"] = e > 0, each item weighted
    by (items of its source)^-e, so a source's share of the batches grows as n^(1-e) instead of n: one
    large collection (COVID-BLUES, one device) or one large POCUS source does not set the look of a scan.
    """
    e = cfg.get("source_balance", 0.0)
    idx = np.array(train_idx)
    if e <= 0:
        return idx, None
    counts = {}
    for i in idx:
        counts[data.source[i]] = counts.get(data.source[i], 0) + 1
    w = torch.tensor([counts[data.source[i]] ** -e for i in idx], dtype=torch.float64)
    return idx, w / w.sum()


def draw(idx, weights, b, gen):
    if weights is None:
        return idx[torch.randint(0, len(idx), (b,), generator=gen).numpy()]
    return idx[torch.multinomial(weights, b, replacement=True, generator=gen).numpy()]


def _augment(x, gen, cfg, strength=1.0):
    x = augment(x, gen, strength=strength)
    return device_augment(x, gen, p=cfg["device_aug"]) if cfg.get("device_aug", 0.0) > 0 else x


def _set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


def pretrain_contrastive(model, data, train_idx, cfg, gen, device, log):
    """Clip-contrastive pretraining (SimCLR-style NT-Xent, no labels).

    Positives are two different frames of the same clip, each independently
    augmented and cropped; negatives are the other clips in the batch. Frames
    of one clip share anatomy and machine settings, so the backbone learns what
    a scan looks like rather than which frame it is.
    """
    backbone = model.backbone
    proj = torch.nn.Sequential(
        torch.nn.Linear(backbone.embedding_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)
    ).to(device)
    params = list(backbone.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=cfg["ssl_lr"], weight_decay=1e-4)
    b = cfg["ssl_batch"]
    idx, weights = source_sampler(data, train_idx, cfg)
    started = time.time()
    backbone.train()
    for step in range(cfg["ssl_steps"]):
        _set_lr(opt, cosine_lr(step, cfg["ssl_steps"], cfg["ssl_lr"]))
        pick = draw(idx, weights, b, gen)
        views = data.sample(pick, 2, gen).to(device)  # [2b]: frames (2i, 2i+1) from clip i
        views = _augment(random_crop_resize(views, gen), gen, cfg, strength=1.3)
        z = F.normalize(proj(backbone(views)), dim=1)
        sim = z @ z.t() / cfg["ssl_temperature"]
        sim.fill_diagonal_(-1e9)
        target = torch.arange(2 * b, device=device) ^ 1  # partner index: 0<->1, 2<->3, ...
        loss = F.cross_entropy(sim, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == cfg["ssl_steps"] - 1:
            log(f"  ssl step {step:4d} loss {loss.item():.3f}")
    return time.time() - started


def pos_weights(y):
    """neg/pos per label over the annotated training clips, capped: rare findings are not drowned out."""
    pos = torch.nansum(y, 0)
    n = (~torch.isnan(y)).sum(0).float()
    return ((n - pos) / pos.clamp(min=1)).clamp(1.0, 10.0)


class WeightAverage:
    """Exponential moving average of the weights (and BatchNorm statistics), applied at the end.

    With a hundred-odd training clips the last SGD iterate wanders with the last few
    batches; the average is a flatter, steadier model. decay 0 disables it.
    """

    def __init__(self, model, decay):
        self.model, self.decay = model, decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()} if decay > 0 else None

    def update(self):
        if self.state is None:
            return
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)

    def apply(self):
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _supervised_loop(model, params, data, train_idx, cfg, gen, device, log, tag, clip_loss):
    """The shared MIL loop: sample clips, a few augmented frames each, a clip-level loss."""
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    average = WeightAverage(model, cfg.get("ema", 0.0))
    b, f = cfg["batch_clips"], cfg["frames_per_clip"]
    idx, weights = source_sampler(data, train_idx, cfg)
    started = time.time()
    for step in range(cfg["steps"]):
        _set_lr(opt, cosine_lr(step, cfg["steps"], cfg["lr"]))
        pick = draw(idx, weights, b, gen)
        x = _augment(data.sample(pick, f, gen).to(device), gen, cfg)
        loss = clip_loss(x, pick, b, f)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        average.update()
        if step % 200 == 0 or step == cfg["steps"] - 1:
            log(f"  {tag} step {step:4d} loss {loss.item():.3f}")
    average.apply()
    return time.time() - started


def diagnosis_weights(data, train_idx, device):
    """Balanced class weights for the diagnosis cross-entropy over the training clips."""
    d = data.diagnosis[train_idx]
    counts = torch.bincount(d[d >= 0], minlength=len(data.diagnoses)).float()
    return (counts.sum() / (len(counts) * counts.clamp(min=1))).to(device)


def train_mil(model, data, train_idx, cfg, gen, device, log):
    """Multiple-instance learning from clip-level biomarker flags; unannotated flags are masked out.

    With cfg["aux_diagnosis"] > 0 a diagnosis head on the same embedding adds that
    weight times a class-balanced cross-entropy: every clip has a diagnosis while the
    biomarker flags are sparse, and the findings are what tell the diagnoses apart,
    so the extra signal shapes the same features. The head is not exported.
    """
    y_all = data.y
    pw = pos_weights(y_all[train_idx]).to(device)
    aux = cfg.get("aux_diagnosis", 0.0)
    cw = diagnosis_weights(data, train_idx, device) if aux > 0 else None

    def clip_loss(x, pick, b, f):
        logits, emb = model(x)
        clip_logits = lse_pool(logits, f)
        y = y_all[pick].to(device)
        mask = ~torch.isnan(y)
        loss_el = F.binary_cross_entropy_with_logits(clip_logits, torch.nan_to_num(y), pos_weight=pw, reduction="none")
        loss = (loss_el * mask).sum() / mask.sum().clamp(min=1)
        if aux > 0:
            cl = model.class_head(model.drop(emb)).view(b, f, -1).mean(1)
            # ignore_index: items not labelled for diagnosis add nothing.
            loss = loss + aux * F.cross_entropy(cl, data.diagnosis[pick].to(device), weight=cw, ignore_index=-1)
        return loss

    model.train()
    return _supervised_loop(model, model.parameters(), data, train_idx, cfg, gen, device, log, "mil", clip_loss)


def train_e2e(model, data, train_idx, cfg, gen, device, log):
    """The end-to-end baseline: the same backbone trained on the clip diagnosis directly (mean-pooled logits)."""
    # Only items labelled for diagnosis train the baseline.
    train_idx = [i for i in train_idx if data.diagnosis[i] >= 0]
    weight = diagnosis_weights(data, train_idx, device)

    def clip_loss(x, pick, b, f):
        logits = model.class_head(model.backbone(x)).view(b, f, -1).mean(1)
        return F.cross_entropy(logits, data.diagnosis[pick].to(device), weight=weight)

    model.train()
    params = list(model.backbone.parameters()) + list(model.class_head.parameters())
    return _supervised_loop(model, params, data, train_idx, cfg, gen, device, log, "e2e", clip_loss)


@torch.no_grad()
def predict_clips(model, data, indices, device, batch=256):
    """Per clip, over all its frames: biomarker probability mean/max, and diagnosis probabilities if there is a class head."""
    model.eval()
    out = []
    for i in indices:
        x = data.clip(i).to(device)
        logits, emb = [], []
        for s in range(0, x.shape[0], batch):
            l, e = model(x[s : s + batch])
            logits.append(l)
            emb.append(e)
        logits = torch.cat(logits)
        p = torch.sigmoid(logits)
        rec = {"index": int(i), "max": p.amax(0).tolist(), "mean": p.mean(0).tolist()}
        if model.class_head is not None:
            cl = model.class_head(torch.cat(emb)).mean(0)
            rec["diagnosis"] = torch.softmax(cl, 0).tolist()
        out.append(rec)
    return out


def new_model(data, cfg, device, e2e=False):
    return Extractor(
        len(data.labels),
        embedding_dim=cfg["embedding_dim"],
        n_classes=len(data.diagnoses) if e2e or cfg.get("aux_diagnosis", 0.0) > 0 else None,
        frame_norm=cfg.get("frame_norm", False),
        dropout=cfg.get("dropout", 0.0),
        extra_conv=cfg.get("extra_conv", False),
    ).to(device)
