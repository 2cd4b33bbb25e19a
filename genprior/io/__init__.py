"""Files in and out: checkpoints, the model zoo, images."""
