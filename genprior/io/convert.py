"""Key maps from foreign checkpoint layouts to genprior's official-name state dicts.

* NVlabs stylegan2-ada-pytorch pickles: ``G_ema``'s init kwargs + flattened state (BRGM.md §7).
* TF StyleGAN2 pickles as BRGM distributes them: ``legacy.convert_tf_generator``'s rules (BRGM.md §8).
* rosinality stylegan2-pytorch ``.pt``: renamed keys; architecture inferred from tensor shapes.
* A bare official state dict: architecture inferred from tensor shapes.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..generators.ops import setup_filter
from .network_pickle import PersistentRecord, TFNetwork, module_state_dict, to_builtin

StateDict = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- NVlabs pickle
def from_nvlabs_pickle(data: Any, source: str) -> tuple[dict, StateDict]:
    """(config, state dict) of ``G_ema`` in a stylegan2-ada-pytorch network pickle (already safely unpickled)."""
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentRecord):
        raise CheckpointError(f"{source}: a network pickle must be a dict holding 'G_ema'")
    g = data["G_ema"]
    if g.class_name != "Generator":
        raise CheckpointError(f"{source}: G_ema is a {g.class_name}, expected a StyleGAN2 Generator")
    kwargs = to_builtin(dict(g.state.get("_init_kwargs") or {}))
    if g.state.get("_init_args"):
        raise CheckpointError(f"{source}: G_ema was built with positional arguments; cannot rebuild it")
    allowed = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
    unknown = set(kwargs) - allowed
    if unknown:  # e.g. StyleGAN3's generator
        raise CheckpointError(f"{source}: unsupported generator arguments {sorted(unknown)} (StyleGAN3 is not supported)")
    synthesis = dict(kwargs.get("synthesis_kwargs") or {})
    synthesis.pop("fused_modconv_default", None)
    kwargs["synthesis_kwargs"] = synthesis
    return {"family": "stylegan2", "kwargs": kwargs}, module_state_dict(g)


# ----------------------------------------------------------------------------- TF pickle
_TF_IGNORED_KWARGS = {
    "truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta",
    "style_mixing_prob", "structure", "conditioning", "fused_modconv", "randomize_noise", "is_template_graph",
    "func_name", "dtype", "use_noise", "components", "mapping_func", "synthesis_func", "num_fp16_res",
    "conv_clamp", "mapping_nonlinearity", "nonlinearity", "fmap_decay", "fmap_min", "label_size",
}


def _tf_params(net: TFNetwork) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def walk(prefix: str, n: TFNetwork) -> None:
        for name, value in n.state.get("variables", []):
            out[prefix + name] = np.asarray(value)
        for name, comp in (n.state.get("components") or {}).items():
            walk(prefix + name + "/", comp)

    walk("", net)
    return out


def from_tf_pickle(data: Any, source: str) -> tuple[dict, StateDict]:
    """(config, state dict) of Gs in a TF StyleGAN2 pickle ``(G, D, Gs)`` of ``dnnlib.tflib`` Networks."""
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data)):
        raise CheckpointError(f"{source}: a TF network pickle must be a tuple (G, D, Gs) of Networks")
    gs = data[2]
    if int(gs.state.get("version", 0)) < 4:
        raise CheckpointError(f"{source}: TF network pickle version {gs.state.get('version')} < 4 is not supported")
    kw = dict(to_builtin(gs.state.get("static_kwargs") or {}))
    for comp in (gs.state.get("components") or {}).values():
        for k, v in to_builtin(comp.state.get("static_kwargs") or {}).items():
            kw.setdefault(k, v)
    known = {"latent_size", "dlatent_size", "resolution", "num_channels", "mapping_layers", "mapping_fmaps",
             "mapping_lrmul", "fmap_base", "fmap_max", "architecture", "resample_kernel", "label_size"}
    unknown = set(kw) - known - _TF_IGNORED_KWARGS
    if unknown:
        raise CheckpointError(f"{source}: unknown TF generator kwargs {sorted(unknown)}")
    if kw.get("label_size", 0):
        raise CheckpointError(f"{source}: conditional TF generators (label_size > 0) are not supported")
    if kw.get("nonlinearity", "lrelu") != "lrelu":
        raise CheckpointError(f"{source}: only lrelu TF generators are supported")
    w_dim = kw.get("dlatent_size", 512)
    config = {"family": "stylegan2", "kwargs": {
        "z_dim": kw.get("latent_size", 512), "c_dim": 0, "w_dim": w_dim,
        "img_resolution": kw.get("resolution", 1024), "img_channels": kw.get("num_channels", 3),
        "mapping_kwargs": {"num_layers": kw.get("mapping_layers", 8), "lr_multiplier": kw.get("mapping_lrmul", 0.01),
                           "layer_features": kw.get("mapping_fmaps", w_dim)},
        "synthesis_kwargs": {"channel_base": 2 * kw.get("fmap_base", 16384), "channel_max": kw.get("fmap_max", 512),
                             "num_fp16_res": 0, "conv_clamp": None, "architecture": kw.get("architecture", "skip"),
                             "resample_filter": list(kw.get("resample_kernel", [1, 3, 3, 1]))},
    }}
    params = _tf_params(gs)
    sd: StateDict = {}
    conv_hwio = lambda v: v.transpose(3, 2, 0, 1)  # noqa: E731
    rules: list[tuple[str, Any]] = [
        (r"dlatent_avg", lambda m, v: ("mapping.w_avg", v)),
        (r"mapping/Dense(\d+)/weight", lambda m, v: (f"mapping.fc{m[1]}.weight", v.T)),
        (r"mapping/Dense(\d+)/bias", lambda m, v: (f"mapping.fc{m[1]}.bias", v)),
        (r"synthesis/4x4/Const/const", lambda m, v: ("synthesis.b4.const", v[0])),
        (r"synthesis/4x4/Conv/(weight)", lambda m, v: ("synthesis.b4.conv1.weight", conv_hwio(v))),
        (r"synthesis/4x4/Conv/(bias|noise_strength)", lambda m, v: (f"synthesis.b4.conv1.{m[1]}", v)),
        (r"synthesis/4x4/Conv/mod_weight", lambda m, v: ("synthesis.b4.conv1.affine.weight", v.T)),
        (r"synthesis/4x4/Conv/mod_bias", lambda m, v: ("synthesis.b4.conv1.affine.bias", v + 1)),
        (r"synthesis/(\d+)x\1/Conv0_up/weight", lambda m, v: (f"synthesis.b{m[1]}.conv0.weight", conv_hwio(v[::-1, ::-1]))),
        (r"synthesis/(\d+)x\1/Conv1/weight", lambda m, v: (f"synthesis.b{m[1]}.conv1.weight", conv_hwio(v))),
        (r"synthesis/(\d+)x\1/Conv0_up/(bias|noise_strength)", lambda m, v: (f"synthesis.b{m[1]}.conv0.{m[2]}", v)),
        (r"synthesis/(\d+)x\1/Conv1/(bias|noise_strength)", lambda m, v: (f"synthesis.b{m[1]}.conv1.{m[2]}", v)),
        (r"synthesis/(\d+)x\1/Conv0_up/mod_weight", lambda m, v: (f"synthesis.b{m[1]}.conv0.affine.weight", v.T)),
        (r"synthesis/(\d+)x\1/Conv1/mod_weight", lambda m, v: (f"synthesis.b{m[1]}.conv1.affine.weight", v.T)),
        (r"synthesis/(\d+)x\1/Conv0_up/mod_bias", lambda m, v: (f"synthesis.b{m[1]}.conv0.affine.bias", v + 1)),
        (r"synthesis/(\d+)x\1/Conv1/mod_bias", lambda m, v: (f"synthesis.b{m[1]}.conv1.affine.bias", v + 1)),
        (r"synthesis/(\d+)x\1/ToRGB/weight", lambda m, v: (f"synthesis.b{m[1]}.torgb.weight", conv_hwio(v))),
        (r"synthesis/(\d+)x\1/ToRGB/bias", lambda m, v: (f"synthesis.b{m[1]}.torgb.bias", v)),
        (r"synthesis/(\d+)x\1/ToRGB/mod_weight", lambda m, v: (f"synthesis.b{m[1]}.torgb.affine.weight", v.T)),
        (r"synthesis/(\d+)x\1/ToRGB/mod_bias", lambda m, v: (f"synthesis.b{m[1]}.torgb.affine.bias", v + 1)),
        (r"synthesis/(\d+)x\1/Skip/weight", lambda m, v: (f"synthesis.b{m[1]}.skip.weight", conv_hwio(v[::-1, ::-1]))),
        (r"synthesis/noise(\d+)", lambda m, v: (_tf_noise_name(int(m[1])), v[0, 0])),
        (r"synthesis/lod|.*/lod", None),  # progressive-growing leftover, unused by StyleGAN2
    ]
    for name, value in params.items():
        for pattern, rule in rules:
            m = re.fullmatch(pattern, name)
            if m:
                if rule is not None:
                    key, v = rule(m, value)
                    sd[key] = torch.from_numpy(np.array(v, dtype=np.float32, order="C"))
                break
        else:
            raise CheckpointError(f"{source}: unknown TF variable {name!r}")
    filt = setup_filter(config["kwargs"]["synthesis_kwargs"]["resample_filter"])
    for key in [k for k in sd if k.endswith((".conv0.weight", ".conv1.weight"))]:
        sd[key.replace(".weight", ".resample_filter")] = filt
        sd[key.rsplit(".", 2)[0] + ".resample_filter"] = filt
    return config, sd


def _tf_noise_name(i: int) -> str:
    if i == 0:
        return "synthesis.b4.conv1.noise_const"
    res = 2 ** ((i + 5) // 2)
    return f"synthesis.b{res}.conv{'0' if i % 2 == 1 else '1'}.noise_const"


# ----------------------------------------------------------------------------- shape inference
def solve_channel_base(channels: dict[int, int], source: str) -> tuple[int, int]:
    """(base, max) with ``min(base // res, max) == channels[res]`` for every resolution, or an error."""
    channel_max = max(channels.values())
    candidates = [c * r for r, c in channels.items() if c < channel_max] or [channel_max * max(channels)]
    for base in candidates:
        if all(min(base // r, channel_max) == c for r, c in channels.items()):
            return base, channel_max
    raise CheckpointError(f"{source}: channel counts {channels} do not follow min(base // res, max)")


def infer_pggan_config(sd: StateDict, source: str) -> dict:
    """PGGAN kwargs (mGANprior's ``PGGANGeneratorNet``) from its state dict's shapes."""
    try:
        n_layers = len([k for k in sd if re.fullmatch(r"layer\d+\.wscale\.bias", k)])
        resolution = 2 ** (n_layers // 2 + 1)
        z_dim = sd["layer0.conv.weight"].shape[1]
        image_channels = sd["output0.conv.weight"].shape[0]
        channels = {2 ** (k + 2): sd[f"layer{2 * k + 1}.wscale.bias"].shape[0] for k in range(n_layers // 2)}
    except KeyError as exc:
        raise CheckpointError(f"{source}: not a PGGAN state dict (missing {exc})") from None
    base, fmax = solve_channel_base(channels, source)
    return {"family": "pggan", "kwargs": {
        "resolution": resolution, "z_space_dim": z_dim, "image_channels": image_channels,
        "fused_scale": "layer2.weight" in sd, "fmaps_base": base, "fmaps_max": fmax}}


def infer_stylegan2_config(sd: StateDict, source: str) -> dict:
    """StyleGAN2 kwargs from a bare official-name state dict (conv_clamp cannot be inferred: None)."""
    try:
        fcs = sorted(int(m[1]) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
        res_list = sorted(int(m[1]) for k in sd if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
        last = res_list[-1]
        w_dim = sd[f"mapping.fc{fcs[-1]}.weight"].shape[0]
        c_dim = sd["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in sd else 0
        embed = sd["mapping.embed.weight"].shape[0] if c_dim else 0
        z_dim = sd["mapping.fc0.weight"].shape[1] - embed
        channels = {r: sd[f"synthesis.b{r}.conv1.weight"].shape[0] for r in res_list}
        img_channels = sd[f"synthesis.b{last}.torgb.weight"].shape[0]
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"{source}: not a StyleGAN2 state dict (missing {exc})") from None
    base, channel_max = solve_channel_base(channels, source)
    if f"synthesis.b{res_list[1]}.skip.weight" in sd if len(res_list) > 1 else False:
        architecture = "resnet"
    elif len(res_list) > 1 and f"synthesis.b{res_list[0]}.torgb.weight" in sd:
        architecture = "skip"
    else:
        architecture = "orig" if len(res_list) > 1 else "skip"
    mapping = {"num_layers": len(fcs)}
    hidden = sd["mapping.fc0.weight"].shape[0]
    if len(fcs) > 1 and hidden != w_dim:
        mapping["layer_features"] = hidden
    if c_dim and embed != w_dim:
        mapping["embed_features"] = embed
    return {"family": "stylegan2", "kwargs": {
        "z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": last, "img_channels": img_channels,
        "mapping_kwargs": mapping,
        "synthesis_kwargs": {"channel_base": base, "channel_max": channel_max, "num_fp16_res": 0,
                             "conv_clamp": None, "architecture": architecture},
    }}


# ----------------------------------------------------------------------------- rosinality
def from_rosinality(ckpt: Any, source: str) -> tuple[dict, StateDict]:
    """(config, state dict) from a rosinality stylegan2-pytorch checkpoint (``g_ema`` [+ ``latent_avg``])."""
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        raise CheckpointError(f"{source}: a rosinality checkpoint must be a dict with 'g_ema'")
    g = ckpt["g_ema"]
    sd: StateDict = {}
    n_mlp = len([k for k in g if re.fullmatch(r"style\.\d+\.weight", k)])
    for i in range(1, n_mlp + 1):
        sd[f"mapping.fc{i - 1}.weight"] = g[f"style.{i}.weight"]
        sd[f"mapping.fc{i - 1}.bias"] = g[f"style.{i}.bias"]
    num_convs = len([k for k in g if re.fullmatch(r"convs\.\d+\.conv\.weight", k)])
    size = 4 * 2 ** (num_convs // 2)

    def styled(dst: str, src: str, noise_idx: int) -> None:
        sd[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        sd[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        sd[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        sd[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape([])
        sd[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        sd[f"{dst}.noise_const"] = g[f"noises.noise_{noise_idx}"][0, 0]
        sd[f"{dst}.resample_filter"] = setup_filter([1, 3, 3, 1])

    def to_rgb(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        sd[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        sd[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        sd[f"{dst}.bias"] = g[f"{src}.bias"].reshape(-1)

    try:
        sd["synthesis.b4.const"] = g["input.input"][0]
        sd["synthesis.b4.resample_filter"] = setup_filter([1, 3, 3, 1])
        styled("synthesis.b4.conv1", "conv1", 0)
        to_rgb("synthesis.b4.torgb", "to_rgb1")
        for j in range(num_convs // 2):
            res = 8 * 2**j
            sd[f"synthesis.b{res}.resample_filter"] = setup_filter([1, 3, 3, 1])
            styled(f"synthesis.b{res}.conv0", f"convs.{2 * j}", 2 * j + 1)
            styled(f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
            to_rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{j}")
    except KeyError as exc:
        raise CheckpointError(f"{source}: rosinality checkpoint lacks {exc}") from None
    config = infer_stylegan2_config(sd, source)
    if config["kwargs"]["img_resolution"] != size:
        raise CheckpointError(f"{source}: inconsistent rosinality layers (size {size})")
    if "latent_avg" in ckpt:
        sd["mapping.w_avg"] = ckpt["latent_avg"].reshape(-1).float()
    config["source_note"] = "rosinality" + ("" if "latent_avg" in ckpt else "; w_avg estimated from 10,000 samples")
    return config, sd


def estimate_w_avg(G: Any, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of ``mapping(z)`` over ``n`` seeded z, for checkpoints that carry no ``w_avg``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen).to(G.device)
    with torch.no_grad():
        return G.mapping(z)[:, 0].mean(0)

