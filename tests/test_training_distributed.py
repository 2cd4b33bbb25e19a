"""Training on two processes (torchrun, gloo on the CPU) computes what one process computes on the same batch.

Each process runs half of every batch (one chunk of 4 of a batch of 8); one process with ``--batch-gpu 4`` runs
both chunks. The per-step losses and the trained weights are compared with a stated tolerance of rtol 1e-5,
atol 1e-6 (float sums in another order may differ in the last bits; on this machine they come out equal).
The generator's running mean of w (``w_avg``, used only for truncation) is each process's own, as in NVlabs'
code, and is left out of the comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import torch

from genprior import load_generator

TINY = ["--resolution", "16", "--kimg", "0.04", "--batch", "8", "--g-channel-base", "128", "--g-channel-max", "16",
        "--d-channel-base", "128", "--d-channel-max", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers", "2",
        "--snapshot-kimg", "1", "--progress-sec", "0", "--mirror", "--augment", "ada", "--ada-kimg", "0.1",
        "--device", "cpu", "--threads", "1"]


def _losses(run):
    """(step, loss_G, loss_D) per step: with --progress-sec 0 every step has its own stats.jsonl record."""
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss_G"], r["loss_D"]) for r in records]


def test_two_processes_match_one_process(shared, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in sorted((shared / "data" / "faces-utk64").glob("*.jpg"))[:8]:
        shutil.copy(f, data / f.name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    one = subprocess.run([sys.executable, "-m", "genprior.training", str(data), str(tmp_path / "one"), *TINY,
                          "--batch-gpu", "4"], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "genprior.training", str(data), str(tmp_path / "two"), *TINY],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    log = (tmp_path / "two" / "log.txt").read_text()
    assert "2 process(es), batch 8 (4 per pass)" in log and "1 process(es), batch 8 (4 per pass)" in (
        tmp_path / "one" / "log.txt").read_text()

    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [s for s, _, _ in a] == [s for s, _, _ in b] == list(range(1, 6))
    torch.testing.assert_close(torch.tensor(b)[:, 1:], torch.tensor(a)[:, 1:], rtol=1e-5, atol=1e-6)
    G1 = load_generator(tmp_path / "one" / "network-latest.safetensors", device="cpu").state_dict()
    G2 = load_generator(tmp_path / "two" / "network-latest.safetensors", device="cpu").state_dict()
    for k in G1:
        if not k.endswith("w_avg"):
            torch.testing.assert_close(G2[k], G1[k], rtol=1e-5, atol=1e-6)
    ckpt = [p.name for p in (tmp_path / "two").glob("checkpoint-*.safetensors")]
    assert ckpt == ["checkpoint-00000005.safetensors"]  # written once, by rank 0
