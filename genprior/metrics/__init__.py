"""Metrics, one package: image quality (`image`: PSNR, SSIM, interval coverage), colour (`colour`: Lab,
colorization AuC) and generative-model scores (`generative`: FD-VGG, precision / recall, FID).

All image metrics take N,C,H,W tensors and return one value per image, computed in float64.
"""

from .colour import colorization_auc, rgb_to_lab
from .image import interval_coverage, psnr, ssim

__all__ = ["psnr", "ssim", "interval_coverage", "rgb_to_lab", "colorization_auc"]
