"""The biomarker extractor network: a small CNN over 128x128 gray frames.

Outputs, per frame, the biomarker probabilities (sigmoid of the logits, in the
order of core/biomarkers.ts) and a pooled embedding from the penultimate layer.
The ONNX export keeps exactly these two outputs; the MIL pooling over a clip's
frames is a training-time device only (serving aggregates in TypeScript).
"""
import torch
from torch import nn


def conv_bn(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def frame_mean(x):
    """Mean over each frame's pixels, [N,C,H,W] -> [N,1,1,1].

    The exported graph spells it in two stages (rows, then the rest): onnxruntime's
    single-pass ReduceMean over all 16,384 pixels accumulates less accurately than
    PyTorch: 1.1.0's embedding was 8.8e-5 off on the 16-frame fixture and up to 5.8e-4
    over all training frames (tolerance 1e-4); in two stages, 1.3e-5 on every frame.
    Training keeps the single-pass form, so the trained weights (and a recipe's
    reproducibility) do not change.
    """
    if torch.onnx.is_in_onnx_export():
        return x.mean(dim=3, keepdim=True).mean(dim=(1, 2), keepdim=True)
    return x.mean(dim=(1, 2, 3), keepdim=True)


class Backbone(nn.Module):
    """128 -> 64 -> 32 -> 16 -> 8 feature map, then average and max pooled.

    Max pooling keeps small, local findings (a consolidation, a pleural gap)
    that an average over the whole sector would wash out; the average keeps
    texture-wide patterns (B-line density, A-line reverberation).
    """

    def __init__(self, width=(16, 32, 64, 96), embedding_dim=48, frame_norm=False, extra_conv=False):
        super().__init__()
        self.frame_norm = frame_norm
        w1, w2, w3, w4 = width
        layers = [
            conv_bn(1, w1, 2),
            conv_bn(w1, w2, 2),
            conv_bn(w2, w3, 2),
            conv_bn(w3, w3, 1),
            conv_bn(w3, w4, 2),
        ]
        if extra_conv:
            # A sixth layer at 8x8 widens the receptive field from 47 to 79 pixels of 128: B-lines run
            # from the pleura to the bottom of the sector and A-lines repeat at multiples of the pleural
            # depth, patterns that span more of the frame than five layers see at once.
            layers.append(conv_bn(w4, w4, 1))
        self.features = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(2 * w4, embedding_dim), nn.ReLU(inplace=True))
        self.embedding_dim = embedding_dim

    def pooled(self, x):
        f = self.features(x)
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    def forward(self, x):
        if self.frame_norm:
            # Per-frame standardisation: machines and presets differ in gain and dynamic
            # range, and a source's look should not be a shortcut for its labels.
            mu = frame_mean(x)
            sd = frame_mean((x - mu).pow(2)).add(1e-4).sqrt()
            return self.embed(self.pooled((x - mu) / sd))
        # Centre the [0, 1] pixels once here, so the exported graph takes the
        # serving input (byte / 255) unchanged.
        return self.embed(self.pooled(x - 0.5))


class Extractor(nn.Module):
    def __init__(self, n_labels, embedding_dim=48, n_classes=None, frame_norm=False, dropout=0.0, extra_conv=False):
        super().__init__()
        self.backbone = Backbone(embedding_dim=embedding_dim, frame_norm=frame_norm, extra_conv=extra_conv)
        # Dropout on the embedding during training only (identity in eval and in the export).
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(embedding_dim, n_labels)
        # Only the end-to-end baseline uses a class head (trained on the diagnosis directly).
        self.class_head = nn.Linear(embedding_dim, n_classes) if n_classes else None

    def forward(self, x):
        e = self.backbone(x)
        return self.head(self.drop(e)), e


class ExportWrapper(nn.Module):
    """The serving contract: frames [N,1,S,S] in [0,1] -> biomarkers [N,K] probabilities, embedding [N,D]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames):
        logits, emb = self.model(frames)
        return torch.sigmoid(logits), emb


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())
