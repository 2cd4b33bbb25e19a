"""scripts/train_fixed_time.py: a fixed wall-time budget, then the snapshot and its metrics in a folder."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from genprior import load_generator
from conftest import load_script  # noqa: E402

TINY = ["--resolution", "16", "--kimg", "1000", "--batch", "4", "--g-channel-base", "128", "--g-channel-max", "16",
        "--d-channel-base", "128", "--d-channel-max", "16", "--z-dim", "16", "--w-dim", "16", "--mapping-layers",
        "2", "--holdout", "8", "--progress-sec", "600"]


@pytest.fixture(scope="module")
def script():
    return load_script("train_fixed_time")


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_fixed_time_run_writes_snapshot_and_metrics_and_continues(script, shared, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in sorted((shared / "data" / "faces-utk64").glob("*.jpg"))[:24]:
        shutil.copy(f, data / f.name)
    n = torch.get_num_threads()
    try:
        t0 = time.time()
        m = script.main([str(data), str(tmp_path / "run"), str(tmp_path / "res"), "--minutes", "0.04",
                         "--metrics-n", "8", "--", *TINY])
        wall = time.time() - t0
        assert m["train_wall_sec"] < 0.04 * 60 + 2  # the budget, plus the last step and the snapshot
        assert wall < 60
        assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["metrics.json", "network.safetensors",
                                                                         "samples.png"]
        saved = json.loads((tmp_path / "res" / "metrics.json").read_text())
        assert saved == json.loads(json.dumps(m))
        assert m["n"] == 8 and m["real_images"] == "held-out" and m["device"] == "cpu" and m["step"] > 0
        assert m["fd_vgg"] > 0 and 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
        G = load_generator(tmp_path / "res" / "network.safetensors", device="cpu")
        assert (G.resolution, G.z_dim) == (16, 16)
        with pytest.raises(SystemExit, match="holds a result already"):
            script.main([str(data), str(tmp_path / "run"), str(tmp_path / "res"), "--minutes", "0.02", "--", *TINY])
        again = script.main([str(data), str(tmp_path / "run"), str(tmp_path / "res"), "--minutes", "0.02",
                             "--metrics-n", "8", "--overwrite", "--", *TINY])
        assert again["step"] > m["step"] and again["kimg_this_call"] == pytest.approx(again["kimg"] - m["kimg"])
        with pytest.raises(SystemExit):
            script.main([str(data), str(tmp_path / "run"), str(tmp_path / "res2"), "--minutes", "10", "--", *TINY])
    finally:
        torch.set_num_threads(n)
