"""The one restricted unpickler and its per-format allow-lists, the safetensors reader, the weights-only loader."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from genprior.errors import CheckpointError, UnsafePickleError
from genprior.io.network_pickle import NVLABS_PICKLE, TF_PICKLE, TFNetwork, load_network_pickle
from genprior.io.pickles import NO_GLOBALS, AllowList, RefusedGlobal, restricted_loads
from genprior.io.torchscript_pickle import ScriptObject, torchscript_allow_list
from genprior.io.weights import load_torch_weights, read_safetensors

torch.set_num_threads(1)

FORMATS = {
    "nvlabs": lambda: NVLABS_PICKLE,
    "tf": lambda: TF_PICKLE,
    "torchscript": torchscript_allow_list,
    "legacy-torch-header": lambda: NO_GLOBALS,
}
# For each format: a global that another format allows but this one must refuse.
FOREIGN = {
    "nvlabs": ("dnnlib.tflib.network", "Network"),
    "tf": ("torch._utils", "_rebuild_tensor_v2"),
    "torchscript": ("torch_utils.persistence", "_reconstruct_persistent_obj"),
    "legacy-torch-header": ("collections", "OrderedDict"),
}


def _global_call(module: str, name: str) -> bytes:
    """A protocol-2 pickle: GLOBAL module.name, called with no arguments."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n)R."


def _format_name(allow: AllowList) -> str:
    return re.escape(allow.name)


# ----------------------------------------------------------------------------------------------- allow-lists


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_refuses_a_command_and_runs_nothing(fmt, tmp_path, call_on_unpickle):
    marker = tmp_path / "pwned"
    allow = FORMATS[fmt]()
    refusal = (r"^src\.pkl: refusing to load global (posix|nt|builtins|__builtin__)\.(system|eval): it is not in the "
               rf"allow-list of a {_format_name(allow)}, and genprior never runs code from a file$")
    commands = (call_on_unpickle(os.system, f"touch {marker}"), call_on_unpickle(eval, f"open({str(marker)!r}, 'w')"))
    for payload in commands:
        data = pickle.dumps({"G_ema": payload}, protocol=2)
        with pytest.raises(RefusedGlobal, match=refusal) as info:
            restricted_loads(data, allow, source="src.pkl")
        assert info.value.refused[1] in ("system", "eval")
    assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_refuses_the_globals_of_the_others(fmt):
    module, name = FOREIGN[fmt]
    allow = FORMATS[fmt]()
    with pytest.raises(RefusedGlobal, match=rf"refusing to load global {re.escape(module)}\.{name}: .*"
                                            rf"{_format_name(allow)}") as info:
        restricted_loads(_global_call(module, name), allow, source="x")
    assert info.value.refused == (module, name)
    assert isinstance(info.value, UnsafePickleError)


def test_allowed_globals_resolve_to_genprior_stand_ins():
    script = restricted_loads(b"\x80\x02c__torch__.a\nB\n)\x81}X\x01\x00\x00\x00xK\x07sb.", torchscript_allow_list(),
                              source="x")
    assert isinstance(script, ScriptObject) and script.qualified_name == "__torch__.a.B"
    assert script.attributes == {"x": 7}
    tf = restricted_loads(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81}X\x01\x00\x00\x00vK\x01sb.", TF_PICKLE,
                          source="x")
    assert isinstance(tf, TFNetwork) and tf.state == {"v": 1}


def test_persistent_ids_are_refused_unless_the_format_reads_them():
    data = b"\x80\x02X\x03\x00\x00\x00abcQ."  # BINPERSID 'abc'
    with pytest.raises(UnsafePickleError, match="x: unexpected persistent id 'abc' in a StyleGAN2-ADA network pickle"):
        restricted_loads(data, NVLABS_PICKLE, source="x")
    assert restricted_loads(data, NVLABS_PICKLE, source="x", persistent_load=lambda pid: pid.upper()) == "ABC"


def test_a_truncated_pickle_is_one_checkpoint_error():
    data = pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-4]
    with pytest.raises(CheckpointError, match=r"^x\.pkl: not a readable TorchScript pickle \(truncated or corrupt\?\)"):
        restricted_loads(data, torchscript_allow_list(), source="x.pkl")


def test_tf_pickle_is_read_with_the_tf_list_and_cannot_smuggle_torch(tmp_path, fake_dnnlib):
    path = tmp_path / "tf.pkl"
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    path.write_bytes(pickle.dumps((fake_dnnlib({"variables": [("w", weights)]}),), protocol=4))
    (net,) = load_network_pickle(path)
    assert isinstance(net, TFNetwork) and np.array_equal(net.state["variables"][0][1], weights)
    # the NVlabs list's torch rebuilders are not open to a TF pickle
    path.write_bytes(pickle.dumps((fake_dnnlib({"variables": [("w", torch.zeros(2))]}),), protocol=4))
    with pytest.raises(RefusedGlobal, match=r"torch\._utils\._rebuild_tensor_v2: it is not in the allow-list of a TF "
                                            "StyleGAN2 network pickle"):
        load_network_pickle(path)


def test_network_pickle_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'no.pkl'))}: no such file$"):
        load_network_pickle(tmp_path / "no.pkl")


# ----------------------------------------------------------------------------------------------- safetensors


def _write_safetensors(path: Path) -> dict[str, torch.Tensor]:
    tensors = {"w": torch.arange(6.0).view(2, 3), "n": torch.tensor([1, 2], dtype=torch.int64)}
    save_file(tensors, str(path), metadata={"config": json.dumps({"family": "x", "k": [1, 2]}), "note": "plain"})
    return tensors


def test_safetensors_round_trip_and_json_metadata(tmp_path):
    path = tmp_path / "a.safetensors"
    tensors = _write_safetensors(path)
    f = read_safetensors(path)
    assert set(f.tensors) == set(tensors) and all(torch.equal(f.tensors[k], v) for k, v in tensors.items())
    assert f.metadata == {"config": '{"family": "x", "k": [1, 2]}', "note": "plain"}
    assert f.json("config") == {"family": "x", "k": [1, 2]}
    assert f.json("absent", default=None) is None
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: no 'absent' in its safetensors metadata$"):
        f.json("absent")
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: corrupt note metadata: Expecting value"):
        f.json("note")
    only_meta = read_safetensors(path, tensors=False)
    assert only_meta.tensors == {} and only_meta.metadata == f.metadata


def test_safetensors_tensors_own_aligned_memory(tmp_path):
    """Tensors in fresh 64-byte-aligned memory: CPU kernels round differently on unaligned data, so a result
    loaded back would otherwise not re-render bit-exactly."""
    for pad in range(8):  # header lengths that put the data at every offset safetensors allows
        path = tmp_path / f"a{pad}.safetensors"
        save_file({"a": torch.rand(3), "b": torch.rand(2, 129, 8, 8)}, str(path), metadata={"p": "x" * pad})
        f = read_safetensors(path)
        assert all(t.data_ptr() % 64 == 0 for t in f.tensors.values()), pad


@pytest.mark.parametrize("damage", ["truncated", "header", "empty"])
def test_damaged_safetensors_is_one_clear_error(tmp_path, damage):
    path = tmp_path / "a.safetensors"
    _write_safetensors(path)
    data = path.read_bytes()
    if damage == "truncated":
        data = data[: len(data) - 10]
    elif damage == "header":
        data = data[:8] + b"[" + data[9:]
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        read_safetensors(path)
    message = str(info.value)
    assert message.startswith(f"{path}: unreadable safetensors file (truncated or corrupt?): ") and "\n" not in message
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'b.safetensors'))}: no such file$"):
        read_safetensors(tmp_path / "b.safetensors")


# ----------------------------------------------------------------------------------------------- torch.load


def test_weights_only_loader_round_trip_and_extra_globals(tmp_path):
    sd = {"a": torch.randn(3, generator=torch.Generator().manual_seed(0)), "b": torch.arange(4)}
    torch.save(sd, tmp_path / "sd.pt")
    got = load_torch_weights(tmp_path / "sd.pt")
    assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) and got[k].device.type == "cpu" for k in sd)
    torch.save({"args": argparse.Namespace(size=8)}, tmp_path / "ns.pt")
    with pytest.raises(UnsafePickleError, match=r"ns\.pt: refused to load \(torch\.load weights_only=True\): "
                                                r"Unsupported global: GLOBAL argparse\.Namespace$"):
        load_torch_weights(tmp_path / "ns.pt")
    assert load_torch_weights(tmp_path / "ns.pt", allow=[argparse.Namespace])["args"].size == 8


def test_weights_only_loader_refuses_code_and_names_the_file(tmp_path, call_on_unpickle):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "p": call_on_unpickle(os.system, f"touch {marker}")}, path)
    with pytest.raises(UnsafePickleError, match=rf"^{re.escape(str(path))}: refused to load \(torch\.load "
                                                r"weights_only=True\): Unsupported global: GLOBAL (posix|nt)\.system$"):
        load_torch_weights(path)
    buffer = io.BytesIO(path.read_bytes())
    with pytest.raises(UnsafePickleError, match="^the buffer: refused"):
        load_torch_weights(buffer, source="the buffer")
    assert not marker.exists()


def test_weights_only_loader_damaged_and_missing(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(8, 8)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: unreadable torch file \(truncated or "
                                              r"corrupt\?\): "):
        load_torch_weights(path)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'none.pth'))}: no such file$"):
        load_torch_weights(tmp_path / "none.pth")
