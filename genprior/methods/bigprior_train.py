"""BIGPrior fusion training and testing, under the names of earlier versions.

The code lives in `genprior.methods.fusion_data` (`FusionTriples`), `genprior.methods.fusion_train`
(`train_fusion`, `experiment_dir`, `latest_epoch`) and `genprior.methods.fusion_test` (`test_fusion`).
"""

from .fusion_data import FusionTriples
from .fusion_test import test_fusion
from .fusion_train import experiment_dir, latest_epoch, train_fusion

__all__ = ["FusionTriples", "train_fusion", "test_fusion", "experiment_dir", "latest_epoch"]
