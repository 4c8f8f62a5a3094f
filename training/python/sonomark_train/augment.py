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


def _blur(x, sigma):
    """Per-image Gaussian blur, sigma [N] in pixels (0 leaves the image), by a separable 7-tap kernel."""
    n = x.shape[0]
    t = torch.arange(-3, 4, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.clamp(min=1e-3).view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)
    k = torch.where(sigma.view(-1, 1) > 1e-3, k, (t.view(1, -1) == 0).to(x.dtype))
    # Grouped convolution: each image its own kernel.
    xs = x.view(1, n, *x.shape[2:])
    xs = F.conv2d(F.pad(xs, (3, 3, 0, 0), mode="replicate"), k.view(n, 1, 1, 7), groups=n)
    xs = F.conv2d(F.pad(xs, (0, 0, 3, 3), mode="replicate"), k.view(n, 1, 7, 1), groups=n)
    return xs.view_as(x)


def device_augment(x, gen, p=0.5):
    """Imitations of other scanners and presets (on top of `augment`), each applied with probability p.

    Frames are roi-1 frames: the image region cropped and fitted, probe face at the top, zeros outside.
    - time-gain compensation: a smooth random gain profile over depth (rows), as the TGC sliders make;
    - depth / zoom: a scale of 0.7-1.35 anchored at the probe face (top centre), as a depth change does;
    - resolution: down- then up-sampling by 1-2.5x, and a Gaussian blur (other transducers, focus, codecs);
    - speckle size: multiplicative noise smoothed to a random grain (other frequencies and processing);
    - sector geometry: a random fan (apex above the top, half-angle 25-60 degrees) or a narrower
      rectangle masking the frame, so neither a convex nor a linear outline is a shortcut for a source.
    """
    n, _, size, _ = x.shape
    device = x.device

    def coin():
        return (torch.rand(n, generator=gen) < p).to(device).view(n, 1, 1, 1).float()

    ys = torch.linspace(0, 1, size, device=device).view(1, 1, size, 1)
    # TGC: gain(depth) = exp(a*d + b*d^2), a, b in +-0.6.
    a = _uniform(n, -0.6, 0.6, gen, device).view(n, 1, 1, 1)
    b = _uniform(n, -0.6, 0.6, gen, device).view(n, 1, 1, 1)
    c = coin()
    x = x * (c * torch.exp(a * ys + b * ys * ys) + (1 - c))
    # Depth / zoom about the top centre.
    s = torch.where(coin().view(n) > 0, _uniform(n, 0.7, 1.35, gen, device), torch.ones(n, device=device))
    inv = 1 / s
    zeros = torch.zeros(n, device=device)
    theta = torch.stack([torch.stack([inv, zeros, zeros], 1), torch.stack([zeros, inv, inv - 1], 1)], 1)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), mode="bilinear",
                      padding_mode="zeros", align_corners=False)
    # Resolution: down- and up-sampling, then blur.
    c = coin()
    f = float(_uniform(1, 1.0, 2.5, gen, "cpu").item())
    low = F.interpolate(F.interpolate(x, scale_factor=1 / f, mode="area"), size=(size, size), mode="bilinear",
                        align_corners=False)
    x = c * low + (1 - c) * x
    sigma = _uniform(n, 0.0, 1.5, gen, device) * coin().view(n)
    x = _blur(x, sigma)
    # Speckle grain: noise at a coarser grid, upsampled.
    grain = int(torch.randint(1, 4, (1,), generator=gen).item())
    noise = torch.randn((n, 1, size // grain, size // grain), generator=gen).to(device)
    noise = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    level = _uniform(n, 0, 0.25, gen, device).view(n, 1, 1, 1) * coin()
    x = x * (1 + level * noise)
    # Sector geometry: a fan with its apex above the top centre, or a rectangle.
    xs = torch.linspace(-1, 1, size, device=device).view(1, 1, 1, size)
    apex = _uniform(n, 0.05, 0.6, gen, device).view(n, 1, 1, 1)
    half = _uniform(n, 25, 60, gen, device).view(n, 1, 1, 1) * math.pi / 180
    angle = torch.atan2(xs.abs(), ys * 2 + apex)
    fan = (angle <= half).float()
    width = _uniform(n, 0.6, 1.0, gen, device).view(n, 1, 1, 1)
    rect = (xs.abs() <= width).float()
    kind = (torch.rand(n, generator=gen) < 0.5).to(device).view(n, 1, 1, 1).float()
    shape = kind * fan + (1 - kind) * rect
    c = coin() * 0.6  # geometry changes less often than the rest
    use = (torch.rand(n, generator=gen).to(device).view(n, 1, 1, 1) < c).float()
    x = x * (use * shape + (1 - use))
    return x.clamp_(0, 1)
