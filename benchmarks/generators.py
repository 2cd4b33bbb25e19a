"""Generator conformance and speed: max abs difference to the official fixtures, forward time on this machine.

Run: ``python benchmarks/generators.py`` (writes benchmarks/results/generators.{json,md}).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import genprior
from genprior.generators import build_generator
from genprior.paths import shared_dir

OUT = Path(__file__).parent / "results"


def max_diffs(shared: Path) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for cfg in "ABC":
            fx = load_file(str(shared / "fixtures" / "stylegan2" / f"{cfg}.safetensors"))
            G = genprior.load_generator(shared / "fixtures" / "stylegan2" / f"{cfg}.pkl", device="cpu")
            c = fx.get("fixture.c")
            pairs = {
                "ws": (G.mapping(fx["fixture.z"], c), fx["fixture.ws"]),
                "ws_trunc": (G.mapping(fx["fixture.z"], c, truncation_psi=0.7), fx["fixture.ws_trunc"]),
                "ws_trunc_cutoff4": (G.mapping(fx["fixture.z"], c, truncation_psi=0.7, truncation_cutoff=4),
                                     fx["fixture.ws_trunc_cutoff4"]),
                "img_const": (G.synthesis(fx["fixture.ws"]), fx["fixture.img_const"]),
                "img_trunc_const": (G.synthesis(fx["fixture.ws_trunc"]), fx["fixture.img_trunc_const"]),
                "img_none": (G.synthesis(fx["fixture.ws"], noise_mode="none"), fx["fixture.img_none"]),
                "img_wplus_const": (G.synthesis(fx["fixture.wplus"]), fx["fixture.img_wplus_const"]),
            }
            for k, (a, b) in pairs.items():
                out[f"stylegan2 {cfg}.pkl {k}"] = (a - b).abs().max().item()
        for cfg in ["res64", "res32_fused"]:
            fx = load_file(str(shared / "fixtures" / "pggan" / f"{cfg}.safetensors"))
            G = genprior.load_generator(shared / "fixtures" / "pggan" / f"{cfg}.safetensors", device="cpu")
            out[f"pggan {cfg} img"] = (G.synthesis(fx["fixture.z"]) - fx["fixture.img"]).abs().max().item()
            for k in (4, 6):
                if f"fixture.feat_k{k}" in fx:
                    head, tail = G.split(k)
                    feat = head(fx["fixture.z"])
                    out[f"pggan {cfg} feat_k{k}"] = (feat - fx[f"fixture.feat_k{k}"]).abs().max().item()
                    out[f"pggan {cfg} img_from_k{k}"] = (tail(feat) - fx[f"fixture.img_from_k{k}"]).abs().max().item()
    return out


def time_forward(G, latent_fn, batch: int, repeats: int = 5) -> float:
    """Median seconds of one synthesis call (eval, no grad) at ``batch``."""
    x = latent_fn(batch)
    times = []
    with torch.no_grad():
        G.synthesis(x)
        for _ in range(repeats):
            t = time.perf_counter()
            G.synthesis(x)
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def speeds(shared: Path) -> list[dict]:
    nets = {
        "stylegan2 fixture A (64px, 1.5M params)": genprior.load_generator(shared / "fixtures/stylegan2/A.pkl", "cpu"),
        "stylegan2 256px config-e size (random weights)": build_generator({"family": "stylegan2", "kwargs": dict(
            z_dim=512, w_dim=512, img_resolution=256, img_channels=1,
            synthesis_kwargs=dict(channel_base=16384, channel_max=512))}).eval(),
        "pggan fixture res64": genprior.load_generator(shared / "fixtures/pggan/res64.safetensors", "cpu"),
        "dcgan-digiface64": genprior.load_generator("dcgan-digiface64", "cpu"),
    }
    rows = []
    for name, G in nets.items():
        def latent(n, G=G):
            z = torch.randn(n, G.z_dim)
            return G.mapping(z) if G.w_dim is not None else z
        params = sum(p.numel() for p in G.parameters())
        rows.append({"generator": name, "params": params,
                     **{f"batch{b}_s": round(time_forward(G, latent, b), 4) for b in (1, 8)}})
    return rows


def main() -> None:
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(1)
    report = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "cpu": platform.processor() or platform.machine(), "threads": 1},
              "max_abs_diff": max_diffs(shared), "forward_seconds": speeds(shared)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generators.json").write_text(json.dumps(report, indent=2))
    lines = ["# Generators: conformance and speed", "",
             f"torch {torch.__version__}, 1 CPU thread. Command: `python benchmarks/generators.py`.", "",
             "## Max abs difference to the official outputs (fixtures)", "", "| output | max abs diff |", "|---|---|"]
    lines += [f"| {k} | {v:.3g} |" for k, v in report["max_abs_diff"].items()]
    lines += ["", "## Forward time (synthesis, eval, no grad; median of 5)", "",
              "| generator | params | batch 1 (s) | batch 8 (s) |", "|---|---|---|---|"]
    lines += [f"| {r['generator']} | {r['params']:,} | {r['batch1_s']} | {r['batch8_s']} |" for r in report["forward_seconds"]]
    (OUT / "generators.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
