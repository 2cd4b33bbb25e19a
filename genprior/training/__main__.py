"""``python -m genprior.training DATA OUT_DIR ...``: the same as ``genprior train`` (kept for running jobs)."""

from ..cli import train

if __name__ == "__main__":
    train(prog_name="python -m genprior.training")
