"""`genprior train` / `evaluate` on bad input: one clear line, exit 1, nothing created."""

from __future__ import annotations

import shutil

import pytest
import torch



@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()  # `genprior train` sets its --threads for the process
    yield
    torch.set_num_threads(n)
from conftest import run_cli as run  # noqa: E402


def test_train_on_an_empty_folder_errors_before_creating_the_run(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run("train", tmp_path / "empty", tmp_path / "run", "--resolution", "16", "--kimg", "1")
    assert res.exit_code == 1
    assert res.output.startswith("error: ") and "no images found" in res.output and res.output.count("\n") == 1
    assert not (tmp_path / "run").exists()
    res = run("train", tmp_path / "empty", tmp_path / "run", "--resolution", "16", "--kimg", "1", "--recipe",
              "projected")
    assert res.exit_code == 1 and "projected recipe needs resolution >= 32" in res.output
    assert not (tmp_path / "run").exists()
    res = run("train", tmp_path / "empty", tmp_path / "run", "--resolution", "16", "--kimg", "1", "--batch", "many")
    assert res.exit_code == 2 and "'many' is neither a whole number nor 'auto'" in res.output


@pytest.mark.filterwarnings("ignore:.*not 32x32")
def test_evaluate_on_a_tiny_set_says_how_many_and_which_option(shared, tmp_path):
    folder = tmp_path / "three"
    folder.mkdir()
    for f in sorted((shared / "data" / "faces-utk64").glob("*.jpg"))[:3]:
        shutil.copy(f, folder / f.name)
    res = run("evaluate", folder, "-g", "genprior-digits32")
    assert res.exit_code == 1
    assert ("error: DATA holds 3 image(s); evaluate needs at least 4 (FD-VGG needs 2, precision/recall with --k 3 "
            "need k + 1): add images to DATA, or lower --k") in res.output
    res = run("evaluate", folder, "-g", "genprior-digits32", "--k", "2")
    assert res.exit_code == 0, res.output  # as the message said: 3 images are enough for --k 2
    res = run("evaluate", folder, "-g", "genprior-digits32", "--k", "1", "--n", "1")
    assert res.exit_code == 1 and "--n 1 is too small: it must be between 2 and 3" in res.output
