"""Augmentations that suit B-mode ultrasound, applied to a batch on the device.

- gain and contrast: operators turn the gain knob and machines differ in
  dynamic range and time-gain compensation;
- small affine moves: probe position, depth and tilt change between scans
  (rotations stay small, since "vertical" B-lines and "horizontal" A-lines are
  defined relative to the probe), plus a left-right flip (probe orientation);
- speckle: multiplicative noise, the granular texture of coherent imaging.
Outside the sector stays black: the affine pads with zeros, as the letterbox does.
"""
import math

import torch
import torch.nn.functional as F


def _uniform(n, lo, hi, gen, device):
    return torch.rand(n, generator=gen).to(device) * (hi - lo) + lo


def augment(x, gen, strength=1.0):
    """x: [N,1,S,S] in [0,1]. `gen` is a CPU torch.Generator, so results do not depend on the device."""
    n, device = x.shape[0], x.device
    s = strength
    # Gain (brightness scale) and gamma (contrast curve).
    gain = _uniform(n, 1 - 0.3 * s, 1 + 0.3 * s, gen, device).view(n, 1, 1, 1)
    gamma = torch.exp(_uniform(n, -0.35 * s, 0.35 * s, gen, device)).view(n, 1, 1, 1)
    x = (x.clamp(0, 1) ** gamma) * gain
    # Affine: rotation ±8°, scale ±12%, shift ±6%, and a left-right flip half the time.
    ang = _uniform(n, -8 * s, 8 * s, gen, device) * math.pi / 180
    scale = _uniform(n, 1 - 0.12 * s, 1 + 0.12 * s, gen, device)
    tx = _uniform(n, -0.06 * s, 0.06 * s, gen, device)
    ty = _uniform(n, -0.06 * s, 0.06 * s, gen, device)
    flip = (torch.rand(n, generator=gen) < 0.5).float().to(device) * -2 + 1
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Speckle: multiplicative noise with a per-image level.
    level = _uniform(n, 0, 0.2 * s, gen, device).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen).to(device)
    x = x * (1 + level * noise)
    return x.clamp_(0, 1)


def random_crop_resize(x, gen, min_scale=0.6):
    """A random square crop (60-100% of the side) resized back: the extra view change for contrastive pretraining."""
    n, _, size, _ = x.shape
    device = x.device
    side = _uniform(n, min_scale, 1.0, gen, device)
    cx = (torch.rand(n, generator=gen).to(device) * 2 - 1) * (1 - side)
    cy = (torch.rand(n, generator=gen).to(device) * 2 - 1) * (1 - side)
    zeros = torch.zeros(n, device=device)
    theta = torch.stack([torch.stack([side, zeros, cx], 1), torch.stack([zeros, side, cy], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
