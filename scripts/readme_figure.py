"""The README's picture: truth | observation | bicubic | genprior, from a `genprior restore ... --simulate` folder.

Run: ``python scripts/readme_figure.py restored/face docs/main-command.png``. Each panel is enlarged to 192 px
(nearest neighbour) and captioned with its PSNR / SSIM against the truth, read from the folder's config.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIDE, CAPTION = 192, 30
PANELS = [("truth", "truth.png", None), ("observation", "observation.png", None),
          ("bicubic", "baseline.png", "baseline"), ("genprior", "restored.png", "restored")]


def figure(folder: Path) -> Image.Image:
    """One row of captioned panels from a result folder."""
    config = json.loads((folder / "config.json").read_text())
    metrics = config["history"].get("metrics", {})  # `Reconstruction.save` keeps them under history
    row = Image.new("RGB", (SIDE * len(PANELS), SIDE + CAPTION), "white")
    draw = ImageDraw.Draw(row)
    for i, (label, file, key) in enumerate(PANELS):
        pic = Image.open(folder / file).convert("RGB").resize((SIDE, SIDE), Image.NEAREST)
        row.paste(pic, (i * SIDE, 0))
        m = metrics.get(key) if key else None
        text = label + (f"  {m['psnr']:.2f} dB / {m['ssim']:.3f}" if m else "")
        draw.text((i * SIDE + 4, SIDE + 8), text, fill="black")
    return row


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    out = Path(sys.argv[2])
    figure(Path(sys.argv[1])).save(out)
    print(f"wrote {out}")
