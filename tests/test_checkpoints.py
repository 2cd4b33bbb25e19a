"""Checkpoint readers: NVlabs pickles without running code, TF pickles, rosinality .pt, native files, bad input."""

from __future__ import annotations

import argparse
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import genprior
from genprior import CheckpointError, UnsafePickleError
from genprior.io.checkpoints import read_checkpoint, save_native


def fixture_tensors(shared, cfg="A"):
    return load_file(str(shared / "fixtures" / "stylegan2" / f"{cfg}.safetensors"))


def max_diff(a, b):
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- NVlabs pickles
@pytest.mark.parametrize("name", ["A.pkl", "B.pkl", "C.pkl", "B_numpy1names.pkl"])
def test_nvlabs_pickle_loads_g_ema_exactly(shared, name):
    cfg = name[0]
    fx = fixture_tensors(shared, cfg)
    config, sd = read_checkpoint(shared / "fixtures" / "stylegan2" / name)
    official = {k: v for k, v in fx.items() if not k.startswith("fixture.")}
    assert list(sd) == [k for k in sd]  # official order preserved
    assert set(sd) == set(official)
    assert all(torch.equal(sd[k], official[k]) for k in sd), "G_ema weights differ from the fixture"
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / name, device="cpu")
    with torch.no_grad():
        img = G.synthesis(fx["fixture.wplus"])
    assert max_diff(img, fx["fixture.img_wplus_const"]) <= 1e-4


def test_nvlabs_pickle_config_comes_from_init_kwargs(shared):
    config, _ = read_checkpoint(shared / "fixtures" / "stylegan2" / "C.pkl")
    kw = config["kwargs"]
    assert (kw["z_dim"], kw["c_dim"], kw["w_dim"]) == (24, 5, 32)
    assert kw["synthesis_kwargs"]["conv_clamp"] == 1  # the clamp that fires: only the pickle knows it


@pytest.mark.parametrize("wrap", ["bare", "inside_network_dict"])
def test_pickle_that_runs_a_command_is_refused(tmp_path, wrap, call_on_unpickle):
    marker = tmp_path / "pwned"
    evil = call_on_unpickle(os.system, f"touch {marker}")
    payload = evil if wrap == "bare" else {"G_ema": evil, "G": None, "D": None}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        genprior.load_generator(path, device="cpu")
    assert not marker.exists(), "the command in the pickle ran"


def test_embedded_module_source_is_never_executed(tmp_path, shared):
    """Put real code where the pickle's module source is: the reader records it and runs nothing."""
    marker = tmp_path / "ran"
    placeholder = b"# source omitted"
    code = f"open({str(marker)!r}, 'w')".encode()
    data = (shared / "fixtures" / "stylegan2" / "B.pkl").read_bytes()
    old = bytes([0x8C, len(placeholder)]) + placeholder  # SHORT_BINUNICODE opcode of the placeholder
    assert old in data
    path = tmp_path / "src.pkl"
    path.write_bytes(data.replace(old, bytes([0x8C, len(code)]) + code))
    G = genprior.load_generator(path, device="cpu")
    assert G.resolution == 32
    assert not marker.exists()


def test_malicious_tensor_blob_is_refused(tmp_path, call_on_unpickle):
    """A storage blob (torch.storage._load_from_bytes) is itself read with weights_only=True."""
    marker = tmp_path / "blob"
    blob = pickle.dumps(call_on_unpickle(os.system, f"touch {marker}"))
    path = tmp_path / "blob.pkl"
    path.write_bytes(pickle.dumps({"G_ema": call_on_unpickle(torch.storage._load_from_bytes, blob)}))
    with pytest.raises(CheckpointError):
        genprior.load_generator(path, device="cpu")
    assert not marker.exists()


# ----------------------------------------------------------------------------- TF pickles
def _tf_from_official(sd, kwargs, network):
    """The TF variables an official state dict came from (the inverse of BRGM.md §8), as ``network`` objects."""
    hwio = lambda w: w.numpy().transpose(2, 3, 1, 0)  # noqa: E731
    mapping, synthesis = [], []
    for i in range(kwargs["mapping_kwargs"]["num_layers"]):
        mapping += [(f"Dense{i}/weight", sd[f"mapping.fc{i}.weight"].numpy().T),
                    (f"Dense{i}/bias", sd[f"mapping.fc{i}.bias"].numpy())]
    res_list = [2**i for i in range(2, int(np.log2(kwargs["img_resolution"])) + 1)]
    noise_idx = 0
    for r in res_list:
        b = f"synthesis.b{r}"
        layers = [("Conv", "conv1")] if r == 4 else [("Conv0_up", "conv0"), ("Conv1", "conv1")]
        if r == 4:
            synthesis.append(("4x4/Const/const", sd[f"{b}.const"].numpy()[None]))
        for tf_name, pt in layers:
            w = hwio(sd[f"{b}.{pt}.weight"])
            if tf_name == "Conv0_up":
                w = w[::-1, ::-1]
            p = f"{r}x{r}/{tf_name}/"
            synthesis += [(p + "weight", np.ascontiguousarray(w)), (p + "bias", sd[f"{b}.{pt}.bias"].numpy()),
                          (p + "noise_strength", sd[f"{b}.{pt}.noise_strength"].numpy()),
                          (p + "mod_weight", sd[f"{b}.{pt}.affine.weight"].numpy().T),
                          (p + "mod_bias", sd[f"{b}.{pt}.affine.bias"].numpy() - 1)]
            synthesis.append((f"noise{noise_idx}", sd[f"{b}.{pt}.noise_const"].numpy()[None, None]))
            noise_idx += 1
        p = f"{r}x{r}/ToRGB/"
        synthesis += [(p + "weight", hwio(sd[f"{b}.torgb.weight"])), (p + "bias", sd[f"{b}.torgb.bias"].numpy()),
                      (p + "mod_weight", sd[f"{b}.torgb.affine.weight"].numpy().T),
                      (p + "mod_bias", sd[f"{b}.torgb.affine.bias"].numpy() - 1)]
    syn_kw = kwargs["synthesis_kwargs"]
    static = {"latent_size": kwargs["z_dim"], "dlatent_size": kwargs["w_dim"], "resolution": kwargs["img_resolution"],
              "num_channels": kwargs["img_channels"], "mapping_layers": kwargs["mapping_kwargs"]["num_layers"],
              "fmap_base": syn_kw["channel_base"] // 2, "fmap_max": syn_kw["channel_max"], "architecture": "skip",
              "truncation_psi": 0.5, "randomize_noise": True}

    def net(name, variables, components=None, kw=None):
        return network({"version": 4, "name": name, "static_kwargs": kw or {}, "components": components or {},
                        "build_module_src": "import os; os.system('echo never')", "build_func_name": "G_main",
                        "variables": variables})

    gs = net("G", [("dlatent_avg", sd["mapping.w_avg"].numpy())],
             {"mapping": net("G_mapping", mapping), "synthesis": net("G_synthesis", synthesis)}, static)
    return (net("G", []), net("D", []), gs)


def test_tf_pickle_converts_to_the_official_network(shared, tmp_path, fake_dnnlib):
    import json

    fx = fixture_tensors(shared, "A")
    kwargs = json.loads((shared / "fixtures" / "stylegan2" / "A.json").read_text())["init_kwargs"]
    sd = {k: v for k, v in fx.items() if not k.startswith("fixture.")}
    path = tmp_path / "tf.pkl"
    path.write_bytes(pickle.dumps(_tf_from_official(sd, kwargs, fake_dnnlib), protocol=4))
    G = genprior.load_generator(path, device="cpu")
    assert G.config["kwargs"]["synthesis_kwargs"]["channel_base"] == 4096
    for k, v in G.state_dict().items():
        assert torch.equal(v, sd[k]), k
    with torch.no_grad():
        assert max_diff(G.synthesis(fx["fixture.wplus"]), fx["fixture.img_wplus_const"]) <= 1e-4


def test_tf_pickle_with_unknown_variable_is_refused(shared, tmp_path, fake_dnnlib):
    import json

    fx = fixture_tensors(shared, "B")
    kwargs = json.loads((shared / "fixtures" / "stylegan2" / "B.json").read_text())["init_kwargs"]
    nets = _tf_from_official({k: v for k, v in fx.items() if not k.startswith("fixture.")}, kwargs, fake_dnnlib)
    nets[2].state["variables"].append(("mystery/weight", np.zeros(3, np.float32)))
    path = tmp_path / "tf.pkl"
    path.write_bytes(pickle.dumps(nets))
    with pytest.raises(CheckpointError, match="unknown TF variable 'mystery/weight'"):
        genprior.load_generator(path, device="cpu")


# ----------------------------------------------------------------------------- rosinality
def _rosinality_from_official(sd, n_res):
    g = {}
    n_mlp = len([k for k in sd if k.startswith("mapping.fc") and k.endswith(".weight")])
    for i in range(n_mlp):
        g[f"style.{i + 1}.weight"], g[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.weight"], sd[f"mapping.fc{i}.bias"]
    g["input.input"] = sd["synthesis.b4.const"][None]

    def styled(dst, src, n):
        g[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        g[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        g[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        g[f"noises.noise_{n}"] = sd[f"{src}.noise_const"][None, None]

    def rgb(dst, src):
        g[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        g[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        g[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        g[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    styled("conv1", "synthesis.b4.conv1", 0)
    rgb("to_rgb1", "synthesis.b4.torgb")
    for j in range(n_res - 1):
        r = 8 * 2**j
        styled(f"convs.{2 * j}", f"synthesis.b{r}.conv0", 2 * j + 1)
        styled(f"convs.{2 * j + 1}", f"synthesis.b{r}.conv1", 2 * j + 2)
        rgb(f"to_rgbs.{j}", f"synthesis.b{r}.torgb")
        g[f"convs.{2 * j}.conv.blur.kernel"] = torch.ones(4, 4)  # rosinality buffers genprior ignores
    return g


@pytest.mark.parametrize("with_avg", [True, False])
def test_rosinality_checkpoint_infers_architecture(shared, tmp_path, with_avg):
    fx = fixture_tensors(shared, "A")
    sd = {k: v for k, v in fx.items() if not k.startswith("fixture.")}
    ckpt = {"g_ema": _rosinality_from_official(sd, 5), "args": argparse.Namespace(size=64, n_mlp=8)}
    if with_avg:
        ckpt["latent_avg"] = sd["mapping.w_avg"]
    path = tmp_path / "rosinality.pt"
    torch.save(ckpt, path)
    if with_avg:
        G = genprior.load_generator(path, device="cpu")
    else:
        with pytest.warns(UserWarning, match="w_avg"):
            G = genprior.load_generator(path, device="cpu")
    kw = G.config["kwargs"]
    assert (kw["img_resolution"], kw["z_dim"], kw["mapping_kwargs"]["num_layers"]) == (64, 128, 8)
    assert kw["synthesis_kwargs"]["channel_base"] == 4096 and kw["synthesis_kwargs"]["channel_max"] == 128
    with torch.no_grad():
        assert max_diff(G.synthesis(fx["fixture.wplus"]), fx["fixture.img_wplus_const"]) <= 1e-4
        if with_avg:
            assert max_diff(G.mapping(fx["fixture.z"], truncation_psi=0.7), fx["fixture.ws_trunc"]) <= 2e-5


# ----------------------------------------------------------------------------- native format
def test_native_round_trip_and_no_overwrite(shared, tmp_path):
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / "C.pkl", device="cpu")
    out = save_native(G, tmp_path / "c.safetensors")
    G2 = genprior.load_generator(out, device="cpu")
    assert G2.config == G.config
    fx = fixture_tensors(shared, "C")
    with torch.no_grad():
        assert max_diff(G2.synthesis(fx["fixture.wplus"]), fx["fixture.img_wplus_const"]) <= 1e-4
    with pytest.raises(FileExistsError):
        save_native(G, out)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["pggan/res64.safetensors", "pggan/res32_fused.safetensors"])
def test_bare_pggan_state_dict_config_inferred(shared, name):
    import json

    meta = json.loads((shared / "fixtures" / name.replace(".safetensors", ".json")).read_text())
    config, _ = read_checkpoint(shared / "fixtures" / name)
    assert config == {"family": "pggan", "kwargs": meta["init_kwargs"]}


def test_mganprior_pth_state_dict(shared, tmp_path):
    sd = load_file(str(shared / "fixtures" / "pggan" / "res64.safetensors"))
    fx = {k: sd.pop(k) for k in list(sd) if k.startswith("fixture.")}
    path = tmp_path / "pggan_bedroom256_generator.pth"
    torch.save(dict(sd), path)
    G = genprior.load_generator(path, device="cpu")
    with torch.no_grad():
        assert max_diff(G.synthesis(fx["fixture.z"]), fx["fixture.img"]) <= 5e-5


# ----------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        genprior.load_generator(tmp_path / "nope.pkl", device="cpu")


def test_unknown_model_name():
    with pytest.raises(genprior.GenpriorError, match="not-a-model"):
        genprior.load_generator("not-a-model", device="cpu")


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"hello, this is not a checkpoint", "unknown checkpoint format"),
])
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        genprior.load_generator(path, device="cpu")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["stylegan2/A.pkl", "stylegan2/A.safetensors"])
def test_truncated_file(shared, tmp_path, name):
    data = (shared / "fixtures" / name).read_bytes()
    path = tmp_path / ("cut" + os.path.splitext(name)[1])
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        genprior.load_generator(path, device="cpu")
    assert str(path) in str(info.value)


def test_truncated_torch_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"layer0.conv.weight": torch.zeros(8, 8, 4, 4)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        genprior.load_generator(path, device="cpu")


def test_unknown_architecture(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3), "fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        genprior.load_generator(path, device="cpu")


def test_mismatched_shapes_name_the_tensor(shared, tmp_path):
    from genprior.io.checkpoints import build_from_state_dict

    config, sd = read_checkpoint(shared / "fixtures" / "stylegan2" / "B.pkl")
    sd["synthesis.b8.conv0.weight"] = sd["synthesis.b8.conv0.weight"][:, :10]
    with pytest.raises(CheckpointError, match="synthesis.b8.conv0.weight"):
        build_from_state_dict(config, sd, "B-edited")
    config["kwargs"]["img_resolution"] = 64
    with pytest.raises(CheckpointError, match="missing"):
        build_from_state_dict(config, sd, "B-edited")
