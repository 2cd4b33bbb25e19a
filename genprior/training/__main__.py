"""``python -m genprior.training DATA OUT_DIR ...``: the same as ``genprior train``; also the entry point for
several processes, ``torchrun --nproc_per_node N -m genprior.training DATA OUT_DIR ...``."""

from ..cli import train

if __name__ == "__main__":
    train(prog_name="python -m genprior.training")
