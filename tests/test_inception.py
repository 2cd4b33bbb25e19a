"""FID Inception: conformance with pytorch-fid's own network on seeded weights (fixtures/make_inception_fixture.py)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from genprior.errors import CheckpointError, GenpriorError, UnsafePickleError
from genprior.training.inception import FIDInception, inception_features, load_fid_inception

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _fixture_maker():
    """tests/fixtures/make_inception_fixture.py as a module (its top level needs only torch and safetensors)."""
    spec = importlib.util.spec_from_file_location("make_inception_fixture", FIXTURES / "make_inception_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deterministic_state_dict = _fixture_maker().deterministic_state_dict  # the fill the fixture's weights were made with


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(FIXTURES / "inception_reference.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.fixture(scope="module")
def seeded(reference) -> tuple[FIDInception, dict[str, torch.Tensor]]:
    torch.set_num_threads(1)
    model = FIDInception()
    sd = deterministic_state_dict(model.state_dict(), int(reference[1]["seed"]))
    model.load_state_dict(sd, strict=True)
    return model.eval(), sd


def test_features_match_pytorch_fid(reference, seeded):
    tensors, _ = reference
    with torch.no_grad():
        feats = seeded[0](tensors["images"])
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    torch.testing.assert_close(feats, tensors["features"], rtol=1e-4, atol=1e-4)
    # the two images differ by much more than the tolerance, so the check sees the image, not just the bias
    assert (tensors["features"][0] - tensors["features"][1]).abs().max() > 0.1


def test_state_dict_keys_and_shapes_are_pytorch_fids():
    lines = (FIXTURES / "inception_state_dict_keys.txt").read_text().splitlines()
    expected = [(k, tuple(int(n) for n in s.split("x")) if s != "scalar" else ()) for k, s in
                (ln.split() for ln in lines)]
    ours = [(k, tuple(v.shape)) for k, v in FIDInception().state_dict().items()]
    assert ours == expected
    assert ("fc.weight", (1008, 2048)) in ours and not any(k.startswith("AuxLogits") for k, _ in ours)


def test_load_round_trip(tmp_path, seeded):
    model, sd = seeded
    path = tmp_path / "pt_inception.pth"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)  # older files lack them
    loaded = load_fid_inception(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_missing_and_unexpected_keys(tmp_path, seeded):
    sd = dict(seeded[1])
    del sd["Mixed_6c.branch7x7dbl_4.bn.running_var"]
    sd["AuxLogits.fc.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(Mixed_6c\.branch7x7dbl_4\.bn\.running_var\); "
                                               r"1 unexpected keys \(AuxLogits\.fc\.weight\)"):
        load_fid_inception(path)


def test_wrong_shape_and_not_a_state_dict(tmp_path, seeded):
    sd = dict(seeded[1])
    sd["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"fc\.weight \(1000, 2048\) \(expected \(1008, 2048\)\)"):
        load_fid_inception(tmp_path / "shape.pth")
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match=r"not a flat state dict.*'epoch': int, 'state_dict': dict"):
        load_fid_inception(tmp_path / "nested.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a state dict .* got list"):
        load_fid_inception(tmp_path / "list.pth")
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "list.pth").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable torch file"):
        load_fid_inception(tmp_path / "truncated.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_fid_inception(tmp_path / "absent.pth")


class _Payload:
    """Pickles as a call of ``print``: weights_only must refuse it before anything runs."""

    def __reduce__(self):
        return (print, ("this must never be printed",))


def test_unsafe_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "payload": _Payload()}, path)
    with pytest.raises(UnsafePickleError, match=r"weights_only=True\): Unsupported global: GLOBAL .*print") as info:
        load_fid_inception(path)
    assert isinstance(info.value, GenpriorError) and isinstance(info.value.__context__, pickle.UnpicklingError)
    assert "never be printed" not in capsys.readouterr().out


def test_grey_equals_repeated_rgb_and_uint8(seeded):
    model = seeded[0]
    grey = torch.rand(2, 1, 20, 24, generator=torch.Generator().manual_seed(3))
    feats = inception_features(model, grey, batch=1)
    byte = (grey[:1] * 255).round().byte()
    with torch.no_grad():
        from_rgb = model(grey.expand(-1, 3, -1, -1))
        from_uint8, from_float = model(byte), model(byte.float() / 255)
    assert feats.shape == (2, 2048) and feats.dtype.name == "float64"
    torch.testing.assert_close(torch.from_numpy(feats).float(), from_rgb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=0)
    with pytest.raises(GenpriorError, match=r"\(N, 1 or 3, H, W\)"):
        model(torch.zeros(1, 2, 8, 8))


def test_evaluate_generator_reports_fid_only_with_an_inception(seeded, shared, monkeypatch, tmp_path):
    import genprior
    from genprior.training.data import load_dataset
    from genprior.metrics.generative import cached_fid_inception, evaluate_generator, frechet_distance, generate_images

    G = genprior.load_generator("genprior-digits32", device="cpu")
    real = load_dataset(shared / "data" / "digits" / "t10k-images-idx3-ubyte.gz", resolution=32, channels=1,
                        max_images=6, log=None)
    without = evaluate_generator(G, real, 6, seed=5)
    assert without["fid"] is None
    report = evaluate_generator(G, real, 6, seed=5, inception=seeded[0])
    direct = frechet_distance(inception_features(seeded[0], generate_images(G, 6, seed=5)),
                              inception_features(seeded[0], real))
    assert report["fid"] == pytest.approx(direct, rel=1e-9) and report["fid"] > 0
    assert {k: v for k, v in report.items() if k != "fid"} == {k: v for k, v in without.items() if k != "fid"}
    # only a file with the recorded sha256 counts as cached: an impostor in the cache is not used
    monkeypatch.setenv("GENPRIOR_HOME", str(tmp_path))
    monkeypatch.setenv("GENPRIOR_SHARED", str(tmp_path / "no-shared"))
    assert cached_fid_inception() is None
    from genprior.io import zoo

    target = zoo.cache_path(zoo.get_entry("inception-fid"))
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seeded[1], target)
    with pytest.warns(UserWarning):
        assert cached_fid_inception() is None
