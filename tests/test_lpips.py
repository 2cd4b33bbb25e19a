"""The safe TorchScript reader and LPIPS-VGG16 built from it.

Every archive here is made in the test with torch.jit.script / torch.jit.trace (small networks, random weights),
so NVIDIA's vgg16.pt is not needed: the reference LPIPS below is written independently of genprior.losses and
saved with NVIDIA's key names.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genprior import losses
from genprior.errors import CheckpointError, DownloadError, UnsafePickleError
from genprior.io import zoo
from genprior.io.torchscript import TensorRef, load_torchscript_state_dict, read_torchscript

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


# ------------------------------------------------------------------------------------------ archives


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 1, bias=False)  # bias None: not in the state dict
        self.fc1 = nn.Linear(2, 3)
        self.seq = nn.ModuleList([nn.Linear(3, 3), nn.BatchNorm1d(3)])  # running stats: float + int64 buffers
        self.register_buffer("transposed", torch.arange(12.0).view(3, 4).t())  # non-contiguous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.conv1(x)).mean((2, 3))
        h = self.fc1(h)
        for m in self.seq:
            h = m(h)
        return h + self.transposed.sum()


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = Block()
        self.lpips0 = nn.Parameter(torch.rand(2, 1, 1))
        self.register_buffer("f16", torch.randn(5).half())
        self.register_buffer("flags", torch.tensor([True, False, True]))
        self.register_buffer("scalar", torch.tensor(3.5, dtype=torch.float64))
        self.register_buffer("empty", torch.zeros(0, 4))
        base = torch.randn(20)
        self.register_buffer("view_a", base[2:14:3])  # strided view with an offset
        self.register_buffer("view_b", base[5:9].view(2, 2))  # another view of the same storage
        self.plain = torch.ones(2)  # a tensor attribute that is neither parameter nor buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x) * self.lpips0.sum() + self.f16.float().sum() + self.view_a.sum() + self.view_b.sum()
        return out + self.scalar.float() + self.plain.sum()


def _save(module: nn.Module, path: Path, mode: str) -> Path:
    module = module.eval()
    if mode == "script":
        torch.jit.script(module).save(str(path))
    else:
        torch.jit.save(torch.jit.trace(module, torch.rand(2, 3, 6, 6)), str(path))
    return path


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    b = b.detach()
    return (a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
            and a.storage_offset() == b.storage_offset() and torch.equal(a, b))


@pytest.mark.parametrize("mode", ["script", "trace"])
def test_round_trip_equals_jit_load(mode: str, tmp_path: Path) -> None:
    path = _save(Net(), tmp_path / f"net_{mode}.pt", mode)
    archive = read_torchscript(path)
    ours = archive.state_dict()
    theirs = torch.jit.load(str(path)).state_dict()
    assert list(ours) == list(theirs)  # same names, same order; "plain" is not in either
    assert "layers.conv1.weight" in ours and "lpips0" in ours and "plain" not in ours
    for key, value in theirs.items():
        assert _same(ours[key], value), key
    assert ours["f16"].dtype == torch.float16
    assert not ours["view_a"].is_contiguous()
    assert ours["view_a"].untyped_storage().data_ptr() == ours["view_b"].untyped_storage().data_ptr()
    assert archive.undeclared() == []
    # lazy: shapes are known before any data is read, and a filter reads only what it keeps
    refs = archive.tensor_refs()
    assert isinstance(refs["layers.conv1.weight"], TensorRef) and refs["layers.conv1.weight"].shape == (4, 3, 3, 3)
    only = load_torchscript_state_dict(path, include=lambda k: k.startswith("layers.conv"))
    assert sorted(only) == ["layers.conv1.bias", "layers.conv1.weight", "layers.conv2.weight"]


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """Copy a zip, replacing (bytes) or dropping (None) entries named by their path under the archive folder."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            rel = info.filename[len(root) + 1:]
            if rel in replace:
                if replace[rel] is not None:
                    zout.writestr(info.filename, replace[rel])
            else:
                zout.writestr(info, zin.read(info))
        for rel, blob in (add or {}).items():
            zout.writestr(f"{root}/{rel}", blob)
    return dst


def test_code_is_never_run_and_missing_code_falls_back(tmp_path: Path) -> None:
    path = _save(Net(), tmp_path / "net.pt", "script")
    marker = tmp_path / "marker"
    evil = f"open({str(marker)!r}, 'w').write('ran')\nimport os\nos.system('touch {marker}')\n".encode()
    with zipfile.ZipFile(path) as z:
        codes = [n.split("/", 1)[1] for n in z.namelist() if "/code/" in n and n.endswith(".py")]
    # every code file replaced by Python that would leave the marker if executed or imported
    sd = load_torchscript_state_dict(_rewrite(path, tmp_path / "evil_code.pt", {c: evil for c in codes}))
    assert not marker.exists()
    # without declarations every tensor attribute is taken (a superset of state_dict: here also "plain")
    archive = read_torchscript(_rewrite(path, tmp_path / "no_code.pt", {c: None for c in codes}))
    assert set(archive.state_dict()) == set(sd) | {"plain"}
    assert archive.undeclared()


# ------------------------------------------------------------------------------------------ malicious


def _text(value: str) -> bytes:
    """A pickle BINUNICODE opcode."""
    raw = value.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _evil_archives(tmp_path: Path, marker: Path, evil) -> dict[str, Path]:  # noqa: ANN001
    good = _save(Net(), tmp_path / "good.pt", "trace")
    touch = f"touch {marker}"
    pickles = {
        "os.system": pickle.dumps(evil(os.system, touch), protocol=2),
        "eval": pickle.dumps(evil(eval, f"open({str(marker)!r}, 'w')"), protocol=2),
        # REDUCE of a non-allowed callable hidden inside a __torch__ module's state
        "reduce": (b"\x80\x02c__torch__\nM\n)\x81}(" + _text("a") + b"csubprocess\ncheck_call\n("
                   + _text("touch") + _text(str(marker)) + b"l\x85Rub."),
        # a torch function that is not in the allow-list
        "torch.load": pickle.dumps(evil(torch.load, str(marker)), protocol=2),
    }
    out = {name: _rewrite(good, tmp_path / f"{name}.pt", {"data.pkl": blob}) for name, blob in pickles.items()}
    out["constants"] = _rewrite(good, tmp_path / "constants.pt", {"constants.pkl": pickles["os.system"]})
    return out


def test_malicious_archives_are_refused_without_running(tmp_path: Path, call_on_unpickle) -> None:  # noqa: ANN001
    marker = tmp_path / "pwned"
    for name, path in _evil_archives(tmp_path, marker, call_on_unpickle).items():
        with pytest.raises(UnsafePickleError, match="refusing to load global"):
            read_torchscript(path)
        assert not marker.exists(), name
    assert not marker.exists()


def test_malformed_storage_references_are_refused(tmp_path: Path) -> None:
    good = _save(Net(), tmp_path / "good.pt", "script")
    with zipfile.ZipFile(good) as z:
        data = z.read(z.namelist()[0].split("/")[0] + "/data.pkl")
    bad_key = data.replace(b"X\x01\x00\x00\x000", b"X\x06\x00\x00\x00../../", 1)
    with pytest.raises(CheckpointError, match="malformed storage key"):
        read_torchscript(_rewrite(good, tmp_path / "key.pt", {"data.pkl": bad_key}))
    with pytest.raises(CheckpointError, match="missing from the archive"):
        read_torchscript(_rewrite(good, tmp_path / "nodata.pt", {"data/0": None})).state_dict()
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        read_torchscript(_rewrite(good, tmp_path / "nopkl.pt", {"data.pkl": None}))
    fake_tensor = (b"\x80\x02c__torch__\nM\n)\x81}(" + _text("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
                   + _text("not a storage") + b"K\x00(K\x01t(K\x01t\x89)tRub.")
    with pytest.raises(CheckpointError, match="not a storage of the archive"):
        read_torchscript(_rewrite(good, tmp_path / "fake.pt", {"data.pkl": fake_tensor}))
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        read_torchscript(tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------ LPIPS

WIDTHS = (4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8)
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


class RefLayers(nn.Module):
    """NVIDIA's key layout: layers.conv1..conv13, layers.fc1..fc3."""

    def __init__(self) -> None:
        super().__init__()
        c = 3
        for k, w in enumerate(WIDTHS, start=1):
            setattr(self, f"conv{k}", nn.Conv2d(c, w, 3, padding=1))
            c = w
        self.fc1, self.fc2, self.fc3 = nn.Linear(c, 6), nn.Linear(6, 6), nn.Linear(6, 10)


class RefLPIPS(nn.Module):
    """An LPIPS-VGG16 written from the LPIPS formula: [0, 255] in, NVIDIA-style feature vector out."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = RefLayers()
        for i, k in enumerate((2, 4, 7, 10, 13)):
            setattr(self, f"lpips{i}", nn.Parameter(torch.rand(WIDTHS[k - 1], 1, 1) * 0.3))

    def maps(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = ((img / 127.5 - 1) - SHIFT) / SCALE
        out = []
        for k in range(1, 14):
            if k in (3, 5, 8, 11):
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            x = F.relu(getattr(self.layers, f"conv{k}")(x))
            if k in (2, 4, 7, 10, 13):
                out.append(x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + 1e-10))
        return out

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS as in the paper: 1x1 lin conv (no bias) on squared differences, spatial mean, sum of layers."""
        total = 0
        for i, (fa, fb) in enumerate(zip(self.maps(a), self.maps(b))):
            w = getattr(self, f"lpips{i}").view(1, -1, 1, 1)
            total = total + F.conv2d((fa - fb) ** 2, w).mean(dim=(2, 3)).squeeze(1)
        return total

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        feats = [f * getattr(self, f"lpips{i}").sqrt() / (f.shape[2] * f.shape[3]) ** 0.5
                 for i, f in enumerate(self.maps(img))]
        return torch.cat([f.flatten(1) for f in feats], 1)


@pytest.fixture(scope="module")
def ref_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[RefLPIPS, Path]:
    torch.manual_seed(0)
    ref = RefLPIPS().eval()
    path = tmp_path_factory.mktemp("lpips") / "vgg16.pt"
    torch.jit.save(torch.jit.trace(ref, torch.rand(1, 3, 32, 32) * 255), str(path))
    return ref, path


def test_lpips_matches_independent_reference(ref_archive: tuple[RefLPIPS, Path]) -> None:
    ref, path = ref_archive
    net = losses.LPIPS.from_torchscript(str(path))
    assert net.widths == WIDTHS
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    b[0] = a[0]
    with torch.no_grad():
        ours = net(a, b)
        expected = ref.distance(a * 255, b * 255)
        jit = torch.jit.load(str(path))  # our own archive: running it here is fine
        via_vectors = (jit(a * 255) - jit(b * 255)).square().sum(1)
        fv = net.feature_vector(a)
    assert ours.shape == (3,)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(ours, via_vectors, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fv, jit(a * 255), rtol=1e-5, atol=1e-6)
    assert ours[0].abs() < 1e-6 and (ours[1:] > 0).all()
    with torch.no_grad():  # precomputed features, grey input, gradients
        assert torch.allclose(net(a, net.features(b)), ours)
        grey = a[:, :1]
        assert torch.allclose(net(grey, b[:, :1]), net(grey.repeat(1, 3, 1, 1), b[:, :1].repeat(1, 3, 1, 1)))
    x = a.clone().requires_grad_(True)
    net(x, b).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the traced constants (LPIPS shift and scale) are readable too
    consts = [c for c in read_torchscript(path).constants() if isinstance(c, torch.Tensor)]
    assert any(c.numel() == 3 and torch.allclose(c.flatten(), SHIFT.flatten()) for c in consts)


def test_lpips_scaling_is_imagenet_normalisation() -> None:
    """LPIPS's shift/scale on [-1, 1] equal torchvision's mean/std on [0, 1] (the genforce/torch-fidelity form)."""
    u = torch.rand(2, 3, 4, 4)
    lp = ((u * 2 - 1) - SHIFT) / SCALE
    imagenet = (u - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    assert torch.allclose(lp, imagenet, atol=1e-6)


def test_lpips_rejects_wrong_weights(ref_archive: tuple[RefLPIPS, Path]) -> None:
    sd = load_torchscript_state_dict(ref_archive[1])
    with pytest.raises(CheckpointError, match="missing layers.conv13.bias"):
        losses.LPIPS.from_state_dict({k: v for k, v in sd.items() if k != "layers.conv13.bias"})
    with pytest.raises(CheckpointError, match="negative"):
        losses.LPIPS.from_state_dict({**sd, "lpips2": -sd["lpips2"]})


# ------------------------------------------------------------------------------------------ selection


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENPRIOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GENPRIOR_OFFLINE", raising=False)
    return zoo.cache_path(zoo.get_entry("lpips-vgg16"))


def test_zoo_entry_matches_brgm_notes() -> None:
    entry = zoo.get_entry("lpips-vgg16")
    assert entry.urls == ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",)
    assert entry.sha256.startswith("b437eb09") and entry.sha256.endswith("c07c3")
    assert entry.format == "lpips-vgg-pt" and entry.kind == "perceptual"


def test_lpips_missing_file_names_the_cache_path(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("perceptual_distance must not download")

    monkeypatch.setattr(zoo, "download", no_network)
    with pytest.raises(DownloadError) as info:
        losses.perceptual_distance("lpips")
    assert str(empty_cache) in str(info.value)
    with pytest.warns(UserWarning, match="not available offline"):
        d = losses.perceptual_distance("auto", size=32)
    assert isinstance(d, losses.PerceptualDistance) and d.kind == "vgg"


def test_auto_uses_lpips_from_the_cache(empty_cache: Path, ref_archive: tuple[RefLPIPS, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = zoo.get_entry("lpips-vgg16")
    empty_cache.parent.mkdir(parents=True)
    empty_cache.write_bytes(ref_archive[1].read_bytes())
    # the recorded hash is NVIDIA's: this stand-in is rejected (warned about), so "auto" falls back
    monkeypatch.setattr(losses, "PerceptualDistance", lambda *a, **k: nn.Identity())
    with pytest.warns(UserWarning):
        assert isinstance(losses.perceptual_distance("auto"), nn.Identity)
    # with no recorded hash the cached stand-in is used
    monkeypatch.setitem(zoo._REGISTRY, "lpips-vgg16", dataclasses.replace(entry, sha256=None))
    d = losses.perceptual_distance("auto", size=32, resize="area")
    assert isinstance(d, losses.LPIPS) and d.kind == "lpips" and d.widths == WIDTHS
    assert losses.perceptual_distance("lpips").kind == "lpips"
    with pytest.raises(Exception, match="unknown perceptual distance"):
        losses.perceptual_distance("alex")


def test_resize_modes() -> None:
    x = torch.rand(1, 1, 8, 8)
    up = losses.resize_for_vgg(x, 32, "area")
    assert torch.equal(up, x.repeat_interleave(4, 2).repeat_interleave(4, 3))  # pixel replication, as BRGM
    assert losses.resize_for_vgg(torch.rand(1, 3, 64, 64), None).shape[-1] == 64
    assert losses.resize_for_vgg(torch.rand(1, 3, 8, 8), None).shape[-1] == 32
