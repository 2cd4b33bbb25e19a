"""StyleGAN2 training that works on a CPU: data loading, discriminator, training loop, quality metric."""

from .data import DatasetError, load_dataset, load_image_folder, load_mnist_idx, split_holdout
from .discriminator import StyleGAN2Discriminator
from .loop import TrainingError, train

__all__ = ["train", "TrainingError", "StyleGAN2Discriminator", "DatasetError", "load_dataset",
           "load_image_folder", "load_mnist_idx", "split_holdout"]
