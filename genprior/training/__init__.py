"""GAN training that works on a CPU, a GPU or several: data, networks, losses, the loop, run state, metrics."""

from .config import TrainingConfig, TrainingError
from .data import DatasetError, load_dataset, load_image_folder, load_mnist_idx, split_holdout
from .discriminator import StyleGAN2Discriminator
from .loop import train

__all__ = ["train", "TrainingConfig", "TrainingError", "StyleGAN2Discriminator", "DatasetError", "load_dataset",
           "load_image_folder", "load_mnist_idx", "split_holdout"]
