"""Forward models ``y = A(x) + n`` on N,C,H,W images in [0, 1], with pseudo-inverses, configs and composition.

``p2 @ p1`` (or ``Composed([p1, p2])``) applies ``p1`` first. ``physics_from_config(op.config())`` rebuilds
an operator. Masks are True / 1 where a pixel is observed.
"""

from .base import Composed, Physics, check_image, physics_from_config, register
from .colorization import LUMA_601, Colorization, with_luma
from .denoising import Denoising, estimate_sigma
from .inpainting import (
    BRGM_HOLE_FRACTIONS,
    BRGM_MASKS,
    Inpainting,
    brgm_mask,
    center_mask,
    make_mask,
    mask_from_file,
    random_boxes_mask,
    random_pixels_mask,
    save_mask,
)
from .superres import KERNELS, STANDARD_KERNELS, SuperResolution

__all__ = [
    "Physics", "Composed", "physics_from_config", "register", "check_image",
    "SuperResolution", "KERNELS", "STANDARD_KERNELS",
    "Inpainting", "make_mask", "mask_from_file", "save_mask", "brgm_mask", "center_mask",
    "random_boxes_mask", "random_pixels_mask", "BRGM_MASKS", "BRGM_HOLE_FRACTIONS",
    "Denoising", "estimate_sigma",
    "Colorization", "LUMA_601", "with_luma",
]
