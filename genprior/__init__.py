"""genprior: Bayesian image restoration with deep generative priors."""

__version__ = "0.1.0"

from .errors import CheckpointError, DownloadError, GenpriorError, UnsafePickleError  # noqa: E402
from .generators import Generator, build_generator  # noqa: E402
from .io.checkpoints import load_generator, read_checkpoint, save_native  # noqa: E402
from .result import Reconstruction  # noqa: E402
from . import metrics, physics  # noqa: E402
from .restore import RestoreOptions, restore  # noqa: E402  (the function: genprior.restore(...))
from .methods import BIGPrior, BRGM, FusionNet, MGANPrior, VariationalBRGM  # noqa: E402

__all__ = [
    "__version__", "Generator", "build_generator", "load_generator", "read_checkpoint", "save_native",
    "Reconstruction", "restore", "RestoreOptions", "BRGM", "VariationalBRGM", "MGANPrior", "BIGPrior", "FusionNet", "physics", "metrics",
    "GenpriorError", "CheckpointError", "UnsafePickleError", "DownloadError",
]
