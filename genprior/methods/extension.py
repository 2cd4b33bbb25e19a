"""Range extension: what lets a restoration leave the generator's range, saved compactly and re-rendered exactly.

Real images are never exactly in a generator's range. After the latent fit, a restoration can change

* nothing (`NoExtension`);
* the generator's weights, per image (`LowRankTuning`): pivotal tuning (Roich et al. 2021) in low-rank form,
  ``W_n = W + B_n A_n`` for every weight tensor outside the mapping network (rank r, B starts at 0, so the
  tuning starts at the generator itself). The factors are the whole saved delta: about
  r·(O + I·k²) numbers per layer instead of a copy of the network; the model file is never touched;
* an intermediate state (`FeatureOffset`): intermediate-layer optimisation (ILO, Daras et al. 2021), an
  offset δ_n added to the generator's state at split point k, ``x = tail(head(w) + δ_n, w)``, kept within a
  bounded distance of what the generator produces there.

Every extension renders as ``ext.render(G, latent, noise)`` -> (N, C, R, R) in about [0, 1] (unclamped), for a
batch of N images (its tensors have a leading N), and round-trips through ``state()`` / `extension_from_state`.
``ext.repeat(k)`` tiles it for k latents per image (sample-major, as the variational posterior draws them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..generators import Generator


class NoExtension:
    """The generator as it is."""

    kind = "none"

    def render(self, G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return G.render(latent, clamp=False, noise=noise or None)

    def parameters(self) -> list[torch.Tensor]:
        return []

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def repeat(self, k: int) -> "NoExtension":
        return self

    def detach(self) -> "NoExtension":
        return self


def tunable_weights(G: Generator) -> list[str]:
    """Names of the weight tensors pivotal tuning changes: every >= 2-D parameter outside the mapping network."""
    return [k for k, v in G.named_parameters() if v.ndim >= 2 and not k.startswith("mapping.")]


class _Render(nn.Module):
    """``G.render`` as a module's forward, so that `torch.func.functional_call` can swap G's weights."""

    def __init__(self, G: Generator) -> None:
        super().__init__()
        self.G = G

    def forward(self, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return self.G.render(latent, clamp=False, noise=noise or None)


class LowRankTuning(NoExtension):
    """Per-image low-rank weight deltas ``ΔW_n = B_n A_n`` (B: (N, O, r), A: (N, r, numel / O)) per tuned tensor."""

    kind = "tune"

    def __init__(self, factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.factors = factors

    @classmethod
    def start(cls, G: Generator, n: int, rank: int, gen: torch.Generator) -> "LowRankTuning":
        """Zero deltas (B = 0) with seeded random A (unit-variance rows / sqrt(fan-in)), for n images."""
        if rank < 1:
            raise ValueError(f"the tuning rank must be >= 1, got {rank}")
        params = dict(G.named_parameters())
        factors = {}
        for key in tunable_weights(G):
            w = params[key]
            fan = w[0].numel()
            b = torch.zeros(n, w.shape[0], rank, device=w.device)
            a = torch.randn(n, rank, fan, generator=gen, device=w.device) / fan ** 0.5
            factors[key] = (b, a)
        return cls(factors)

    @property
    def rank(self) -> int:
        return next(iter(self.factors.values()))[0].shape[-1] if self.factors else 0

    def parameters(self) -> list[torch.Tensor]:
        return [t for pair in self.factors.values() for t in pair]

    def render(self, G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        module = _Render(G)
        base = dict(G.named_parameters())
        keys = list(self.factors)

        def one(bs: list[torch.Tensor], as_: list[torch.Tensor], lat: torch.Tensor, nz: Any) -> torch.Tensor:
            weights = {f"G.{k}": base[k] + (b @ a).view_as(base[k]) for k, b, a in zip(keys, bs, as_)}
            maps = None if nz is None else {k: v[None] for k, v in nz.items()}
            return functional_call(module, weights, (lat[None], maps))[0]

        bs = [self.factors[k][0] for k in keys]
        as_ = [self.factors[k][1] for k in keys]
        return vmap(one, in_dims=(0, 0, 0, 0 if noise else None))(bs, as_, latent, noise or None)

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for k, (b, a) in self.factors.items():
            out[f"tune.{k}.B"], out[f"tune.{k}.A"] = b, a
        return out

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "rank": self.rank, "tensors": len(self.factors),
                "numbers_per_image": sum(b[0].numel() + a[0].numel() for b, a in self.factors.values())}

    def repeat(self, k: int) -> "LowRankTuning":
        return LowRankTuning({n: (b.repeat(k, 1, 1), a.repeat(k, 1, 1)) for n, (b, a) in self.factors.items()})

    def detach(self) -> "LowRankTuning":
        return LowRankTuning({n: (b.detach(), a.detach()) for n, (b, a) in self.factors.items()})


class FeatureOffset(NoExtension):
    """ILO: ``x = tail(head(w) + offset, w)`` with the generator split at ``layer`` (offset: (N, C_k, H_k, W_k))."""

    kind = "ilo"

    def __init__(self, layer: int, offset: torch.Tensor) -> None:
        self.layer, self.offset = int(layer), offset
        self._split: tuple[Any, Generator] | None = None

    @classmethod
    def start(cls, G: Generator, latent: torch.Tensor, layer: int,
              noise: dict[str, torch.Tensor] | None = None) -> "FeatureOffset":
        """A zero offset of the right shape for these latents."""
        ext = cls(layer, torch.zeros(()))
        with torch.no_grad():
            ext.offset = torch.zeros_like(ext.head_state(G, latent, noise))
        return ext

    def _parts(self, G: Generator) -> tuple[nn.Module, nn.Module]:
        if self._split is None or self._split[1] is not G:
            self._split = (G.split(self.layer), G)
        return self._split[0]

    def head_state(self, G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None = None
                   ) -> torch.Tensor:
        head, _ = self._parts(G)
        return head(latent, noise=noise or None) if G.w_dim is not None else head(latent)

    def render(self, G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        _, tail = self._parts(G)
        state = self.head_state(G, latent, noise) + self.offset
        raw = tail(state, latent, noise=noise or None) if G.w_dim is not None else tail(state)
        return (raw + 1) * 0.5

    def project_(self, G: Generator, latent: torch.Tensor, radius: float,
                 noise: dict[str, torch.Tensor] | None = None) -> None:
        """In place: shrink each image's offset to RMS <= radius x the RMS of the generator's own state there."""
        with torch.no_grad():
            ref = self.head_state(G, latent, noise).flatten(1).square().mean(1).sqrt()
            rms = self.offset.flatten(1).square().mean(1).sqrt()
            scale = torch.clamp(radius * ref / rms.clamp_min(1e-12), max=1.0)
            self.offset.mul_(scale.view(-1, *([1] * (self.offset.ndim - 1))))

    def parameters(self) -> list[torch.Tensor]:
        return [self.offset]

    def state(self) -> dict[str, torch.Tensor]:
        return {"ilo.offset": self.offset}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "shape": list(self.offset.shape[1:])}

    def repeat(self, k: int) -> "FeatureOffset":
        return FeatureOffset(self.layer, self.offset.repeat(k, *([1] * (self.offset.ndim - 1))))

    def detach(self) -> "FeatureOffset":
        return FeatureOffset(self.layer, self.offset.detach())


Extension = NoExtension | LowRankTuning | FeatureOffset


def extension_from_state(config: dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> Extension:
    """Rebuild an extension from ``ext.config()`` and the tensors of ``ext.state()`` (as saved in a result)."""
    kind = (config or {}).get("kind", "none")
    if kind == "none":
        return NoExtension()
    if kind == "tune":
        keys = sorted({k[len("tune."):-2] for k in tensors if k.startswith("tune.")})
        return LowRankTuning({k: (tensors[f"tune.{k}.B"], tensors[f"tune.{k}.A"]) for k in keys})
    if kind == "ilo":
        return FeatureOffset(config["layer"], tensors["ilo.offset"])
    raise ValueError(f"unknown range extension {kind!r}; known: none, tune, ilo")
