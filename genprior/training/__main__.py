"""``python -m genprior.training DATA OUT_DIR --resolution 64 --kimg 500 ...``: run or resume `train`.

A stop-gap runner for long background runs until ``genprior train`` wires `genprior.training.train` into the CLI;
the same command resumes an interrupted run from its last snapshot.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import GenpriorError
from .loop import train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genprior.training", description=__doc__.splitlines()[0])
    p.add_argument("data", help="folder of images, zip archive, or MNIST idx(.gz) file")
    p.add_argument("out_dir")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--channels", type=int, choices=(1, 3), default=None)
    p.add_argument("--kimg", type=float, required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--g-channel-base", type=int, default=4096)
    p.add_argument("--g-channel-max", type=int, default=128)
    p.add_argument("--d-channel-base", type=int, default=4096)
    p.add_argument("--d-channel-max", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--w-dim", type=int, default=128)
    p.add_argument("--mapping-layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.0025)
    p.add_argument("--r1-gamma", type=float, default=None)
    p.add_argument("--ema-kimg", type=float, default=None)
    p.add_argument("--augment", default="diffaugment")
    p.add_argument("--mirror", action="store_true")
    p.add_argument("--snapshot-kimg", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--progress-sec", type=float, default=60.0)
    a = p.parse_args(argv)
    try:
        train(a.data, a.out_dir, resolution=a.resolution, channels=a.channels, kimg=a.kimg, batch=a.batch,
              g_channel_base=a.g_channel_base, g_channel_max=a.g_channel_max, d_channel_base=a.d_channel_base,
              d_channel_max=a.d_channel_max, z_dim=a.z_dim, w_dim=a.w_dim, mapping_layers=a.mapping_layers, lr=a.lr,
              r1_gamma=a.r1_gamma, ema_kimg=a.ema_kimg, augment=a.augment, mirror=a.mirror,
              snapshot_kimg=a.snapshot_kimg, seed=a.seed, holdout=a.holdout, num_threads=a.threads,
              progress_sec=a.progress_sec)
    except KeyboardInterrupt:
        return 130
    except GenpriorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
