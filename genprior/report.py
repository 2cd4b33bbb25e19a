"""One report per result: a composite picture and an offline ``index.html``, rebuilt from the saved state.

`write_report(directory)` reads a result folder (``state.safetensors`` + ``config.json``) and writes

* ``report.png``: for each image, in a row: the observation (on the image grid), the restoration, the truth
  when known, up to four posterior samples, the per-pixel std, the calibrated interval width (``upper -
  lower``), the residual ``|A(x) - y|`` on the observation's own grid, and φ for BIGPrior; each map with its
  colour bar and scale (the value at the top of the bar) printed under it;
* ``index.html``: the same panels as separate PNGs (``report_*.png``), with the method, its settings, the
  metrics and the calibration's guarantee; no script, no external resource, so it opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .io.atomic import atomic_path
from .io.images import to_uint8
from .result import Reconstruction, colormap

CELL = 128  # pixels per panel side
BAR = 14  # colour bar width
LABEL = 14  # label strip height


def _to_cell(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (CELL, CELL, 3) uint8, nearest-neighbour enlarged."""
    x = x.float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    x = F.interpolate(x[None], size=(CELL, CELL), mode="nearest")[0]
    return to_uint8(x)


def _bar(vmax: float) -> np.ndarray:
    """A vertical colour bar (CELL, BAR, 3): bright = vmax at the top, 0 at the bottom."""
    ramp = torch.linspace(1, 0, CELL).view(1, CELL, 1).expand(1, CELL, BAR)
    return to_uint8(colormap(ramp, vmax=1.0))


def _map_panel(m: torch.Tensor, vmax: float | None = None) -> tuple[np.ndarray, float]:
    """A scalar map (C, H, W) >= 0 as a colour panel with its bar; the scale is the map's max (or vmax)."""
    top = float(m.float().mean(0).max()) if vmax is None else vmax
    cell = _to_cell(colormap(m, vmax=top if top > 0 else 1.0))
    return np.concatenate([cell, np.full((CELL, 2, 3), 255, np.uint8), _bar(top)], 1), top


def _panels(rec: Reconstruction, i: int) -> list[tuple[str, np.ndarray]]:
    """(caption, picture) for image i of a result."""
    from .physics import physics_from_config

    out: list[tuple[str, np.ndarray]] = []
    cfg = rec.config
    physics = None
    if "physics" in cfg:
        try:
            physics = physics_from_config(cfg["physics"])
        except ValueError:
            physics = None
    if rec.observation is not None:
        obs = rec.observation[i : i + 1]
        shown = physics.A_dagger(obs).clamp(0, 1)[0] if physics is not None else obs[0]
        out.append(("observation", _to_cell(shown)))
    out.append(("restored", _to_cell(rec.mean[i])))
    if "truth" in rec.images:
        out.append(("truth", _to_cell(rec.images["truth"][i])))
    if rec.samples is not None:
        for s in range(min(4, rec.samples.shape[1])):
            out.append((f"sample {s + 1}", _to_cell(rec.samples[i, s])))
    if rec.std is not None:
        pic, top = _map_panel(rec.std[i])
        out.append((f"std (top {top:.3f})", pic))
    if "upper" in rec.images and "lower" in rec.images:
        pic, top = _map_panel(rec.images["upper"][i] - rec.images["lower"][i])
        out.append((f"interval width (top {top:.3f})", pic))
    if physics is not None and rec.observation is not None:
        with torch.no_grad():
            res = (physics.A(rec.mean[i : i + 1]) - rec.observation[i : i + 1]).abs()[0]
        pic, top = _map_panel(res)
        out.append((f"|A(x) - y| (top {top:.3f})", pic))
    if rec.phi is not None:
        pic, _ = _map_panel(rec.phi[i].clamp(0, 1), vmax=1.0)
        out.append(("phi: from the prior (top 1)", pic))
    return out


def _captioned(caption: str, pic: np.ndarray) -> np.ndarray:
    h, w, _ = pic.shape
    strip = Image.new("RGB", (max(w, CELL), LABEL), "white")
    ImageDraw.Draw(strip).text((2, 1), caption[: w // 6], fill="black")
    body = np.full((h, max(w, CELL), 3), 255, np.uint8)
    body[:, :w] = pic
    return np.concatenate([body, np.asarray(strip)], 0)


def _save_png(arr: np.ndarray, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def write_report(directory: str | Path, rec: Reconstruction | None = None) -> Path:
    """(Re)write ``report.png``, ``report_*.png`` and ``index.html`` in a result folder (from its saved state, or
    from ``rec``); returns the path of index.html."""
    d = Path(directory)
    rec = rec if rec is not None else Reconstruction.load(d)
    rows, entries = [], []
    for i in range(rec.mean.shape[0]):
        panels = [_captioned(c, p) for c, p in _panels(rec, i)]
        height = max(p.shape[0] for p in panels)
        padded = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)), constant_values=255) for p in panels]
        rows.append(np.concatenate(padded, 1))
        for k, (caption, pic) in enumerate(_panels(rec, i)):
            name = f"report_{i}_{k}.png"
            _save_png(pic, d / name)
            entries.append((i, caption, name))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    _save_png(grid, d / "report.png")
    return _write_html(d, rec, entries)


def _write_html(d: Path, rec: Reconstruction, entries: list[tuple[int, str, str]]) -> Path:
    cfg = rec.config
    esc = html.escape
    metrics = rec.history.get("metrics", {})
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>genprior result</title>",
             "<style>body{font-family:sans-serif;margin:1em} figure{display:inline-block;margin:4px}"
             " img{image-rendering:pixelated} td,th{padding:2px 8px;text-align:left}</style></head><body>",
             f"<h1>{esc(str(cfg.get('method', 'result')))}: {esc(str(cfg.get('input', '')))}</h1>"]
    if "calibration" in cfg:
        parts.append(f"<p><b>Calibrated interval:</b> {esc(cfg['calibration'].get('guarantee', ''))}</p>")
    if metrics:
        parts.append("<table><tr><th>image</th><th>PSNR (dB)</th><th>SSIM</th></tr>")
        parts += [f"<tr><td>{esc(k)}</td><td>{v['psnr']:.2f}</td><td>{v['ssim']:.3f}</td></tr>"
                  for k, v in metrics.items()]
        parts.append("</table>")
    for i in sorted({e[0] for e in entries}):
        parts.append(f"<h2>image {i}</h2>")
        parts += [f"<figure><img src='{esc(name)}' alt='{esc(c)}'><figcaption>{esc(c)}</figcaption></figure>"
                  for j, c, name in entries if j == i]
    settings = {k: v for k, v in cfg.items() if k not in ("generator", "physics")}
    parts.append("<h2>settings</h2><pre>" + esc(json.dumps(settings, indent=1, default=str)) + "</pre></body></html>")
    path = d / "index.html"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text("\n".join(parts))
    return path
