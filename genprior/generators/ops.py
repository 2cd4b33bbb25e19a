"""StyleGAN2's low-level operations in pure PyTorch (CPU, CUDA, MPS; no compiled extensions).

Written from the operations' definitions (NVlabs stylegan2-ada-pytorch documents them in
``torch_utils/ops``); the reference semantics are kept exactly, so official weights give official images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def setup_filter(taps: list[float]) -> torch.Tensor:
    """Normalised 2-D FIR filter (outer product of ``taps`` / sum²), e.g. [1,3,3,1] -> 4x4 summing to 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative crops), convolve with the 2-D filter ``f``, downsample.

    Args:
        x: (N, C, H, W).
        f: (fh, fw) filter; it is flipped, so this is a true convolution (irrelevant for symmetric f).
        padding: (x0, x1, y0, y1), applied after upsampling.
        gain: the filter is scaled by ``gain`` (for a 2-D filter, ``gain ** (ndim / 2)`` with ndim = 2).
    Returns:
        (N, C, H', W').
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = (f * gain).to(x.dtype).flip([0, 1])
    x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample (N, C, H, W) -> (N, C, H*up, W*up) with the FIR filter ``f`` (gain up² keeps the mean)."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``, b broadcast over dim 1; act is "linear" (gain 1) or "lrelu" (0.2, gain √2)."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2)).to(x.dtype)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
        gain = SQRT2 if gain is None else gain
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    *,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
) -> torch.Tensor:
    """2-D convolution with optional 2x up- or down-sampling, as StyleGAN2 composes them.

    Up-sampling is a stride-``up`` transposed convolution (weights transposed, not flipped) followed by
    the FIR filter ``f``; down-sampling filters first, then convolves with stride ``down`` (a 1x1 kernel
    subsamples in the filter instead); otherwise a plain ``conv2d`` (cross-correlation when ``flip_weight``,
    as torch does).

    Args:
        x: (N, I*groups, H, W). w: (O, I, kh, kw). f: (fh, fw) filter, needed when up > 1 or down > 1.
    Returns:
        (N, O, H*up/down, W*up/down) for "same" padding.
    """
    out_ch, in_per_group, kh, kw = w.shape
    if down > 1:
        assert up == 1 and f is not None, "down-sampling needs a resample filter and no up-sampling"
        fw = f.shape[-1]
        p0, p1 = padding + (fw - down + 1) // 2, padding + (fw - down) // 2
        if not flip_weight:
            w = w.flip([2, 3])
        if kw == 1 and kh == 1:
            x = upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))
            return F.conv2d(x, w.to(x.dtype), groups=groups)
        x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
        return F.conv2d(x, w.to(x.dtype), stride=down, groups=groups)
    if up == 1:
        if not flip_weight:
            w = w.flip([2, 3])
        return F.conv2d(x, w.to(x.dtype), padding=padding, groups=groups)
    assert f is not None, "up-sampling needs a resample filter"
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    pt = max(min(-p0, -p1), 0)
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    if flip_weight:  # transposed conv flips by itself; pre-flip to cancel when a correlation was asked for
        w = w.flip([2, 3])
    x = F.conv_transpose2d(x, w.to(x.dtype), stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, padding=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution.

    Args:
        x: (N, I, H, W). weight: (O, I, kh, kw). styles: (N, I). noise: broadcastable to the output.
        fused: one grouped convolution with per-sample weights (the official eval path); otherwise scale
            the activations around a shared-weight convolution (the official training path, ~1e-6 away).
    Returns:
        (N, O, H*up, W*up).
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:  # keep fp16 in range, as the official fp16 layers do
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = None
    if demodulate or fused:
        wm = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, kh, kw]
        if demodulate:
            dcoefs = (wm.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight, resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)
    if dcoefs is not None:
        wm = wm * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(
        x, wm.reshape(-1, in_ch, kh, kw), resample_filter, up=up, padding=padding, groups=n, flip_weight=flip_weight
    )
    x = x.reshape(n, -1, *x.shape[2:])
    return x if noise is None else x + noise.to(x.dtype)
