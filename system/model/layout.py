"""Token layout of one frame: which of the S tokens belong to which modality, and who may read whom.

Every frame of the block-causal transformer holds S tokens, laid out as consecutive modality segments, e.g.

    tokenizer encoder:  [patches x N_p | latents x N_b]
    tokenizer decoder:  [latents x N_b | readouts x N_p]
    dynamics:           [latents x N_z | registers x S_r | signal x 1 | actions x S_a | agent x S_g]

`TokenLayout` is the only place that does index arithmetic on token positions. It builds the S x S boolean
mask of the space layers (`space_mask[q, k]` is True where query token q may attend to key token k) from
per-modality read rules. Temporal layers attend across frames within one token position, so they need no
modality mask: a token only ever reads its own position in earlier frames.

The agent rule of the paper (section 4) is enforced here for every layout: agent tokens may read every modality,
and no other modality may read agent tokens, so a task embedding can never steer the world model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

AGENT = "agent"
ALL = "*"


@dataclass(frozen=True)
class TokenLayout:
    """Ordered modality segments of a frame plus the modalities each one reads in space layers.

    segments: ((modality, count), ...) in token order.
    reads:    ((modality, (readable modality, ...)), ...); ALL ("*") means every modality except agent
              (agent tokens are never readable by others); the agent modality always reads everything.
    """

    segments: tuple[tuple[str, int], ...]
    reads: tuple[tuple[str, tuple[str, ...]], ...]

    @staticmethod
    def build(segments: dict[str, int], reads: dict[str, str | list[str] | tuple[str, ...]]) -> "TokenLayout":
        """Convenience constructor from dicts (insertion order is token order); zero-count segments are dropped."""
        segs = tuple((name, int(count)) for name, count in segments.items() if count > 0)
        names = {name for name, _ in segs}
        rules = []
        for name, _ in segs:
            rule = reads.get(name, ALL if name == AGENT else None)
            if rule is None:
                raise ValueError(f"layout: no read rule for modality {name!r}")
            rule = (rule,) if isinstance(rule, str) else tuple(rule)
            rules.append((name, tuple(r for r in rule if r == ALL or r in names)))
        return TokenLayout(segs, tuple(rules))

    def __post_init__(self) -> None:
        names = [name for name, _ in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"layout: duplicate modality in {names}")
        if any(count <= 0 for _, count in self.segments):
            raise ValueError(f"layout: segment counts must be positive, got {self.segments}")
        rule_names = [name for name, _ in self.reads]
        if sorted(rule_names) != sorted(names):
            raise ValueError(f"layout: read rules for {rule_names} do not match modalities {names}")
        for name, readable in self.reads:
            for other in readable:
                if other != ALL and other not in names:
                    raise ValueError(f"layout: {name!r} reads unknown modality {other!r}")
                if other == AGENT and name != AGENT:
                    raise ValueError(f"layout: {name!r} may not read agent tokens (nothing reads the agent)")
            if name != AGENT and ALL not in readable and name not in readable:
                # A token that reads nothing has an all-masked softmax row.
                raise ValueError(f"layout: {name!r} must read its own modality")

    @property
    def num_tokens(self) -> int:
        return sum(count for _, count in self.segments)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.segments)

    def count(self, modality: str) -> int:
        return dict(self.segments).get(modality, 0)

    def slice(self, modality: str) -> slice:
        """Token positions of `modality` within a frame: x[..., layout.slice('latents'), :]."""
        start = 0
        for name, count in self.segments:
            if name == modality:
                return slice(start, start + count)
            start += count
        raise KeyError(f"layout has no modality {modality!r} (has {self.modalities})")

    def grid_coords(self, placed: dict[str, torch.Tensor]) -> torch.Tensor:
        """(S, 2) float (row, col) of every token for 2D space RoPE (system/model/grid_positions.py). `placed`
        gives the coordinates (count, 2) of the spatial modalities; every other token (registers, signal, actions,
        agent) sits at the centre of the placed ones: global tokens, at one offset range from every patch."""
        for name, coords in placed.items():
            if tuple(coords.shape) != (self.count(name), 2):
                raise ValueError(f"layout: {name!r} has {self.count(name)} tokens, got coordinates of shape "
                                 f"{tuple(coords.shape)}")
        if not placed:
            raise ValueError("layout: grid coordinates need at least one placed modality")
        centre = torch.cat(list(placed.values())).float().mean(0)
        return torch.cat([placed[name].float() if name in placed else centre.expand(count, 2)
                          for name, count in self.segments])

    def modality_ids(self) -> torch.Tensor:
        """(S,) int64: index into `modalities` of each token position."""
        # Always on the CPU, also under a `with torch.device("meta")` model construction.
        return torch.cat([torch.full((count,), i, dtype=torch.long, device="cpu")
                          for i, (_, count) in enumerate(self.segments)])

    @cached_property
    def _space_mask(self) -> torch.Tensor:
        names = self.modalities
        rules = dict(self.reads)
        allowed = torch.zeros(len(names), len(names), dtype=torch.bool, device="cpu")
        for i, name in enumerate(names):
            for j, other in enumerate(names):
                if name == AGENT:
                    allowed[i, j] = True
                elif other != AGENT and (ALL in rules[name] or other in rules[name]):
                    allowed[i, j] = True
        ids = self.modality_ids()
        return allowed[ids[:, None], ids[None, :]]

    def space_mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(S, S) bool: True where query token q may attend to key token k within one frame."""
        return self._space_mask.to(device) if device is not None else self._space_mask.clone()

    @property
    def is_dense(self) -> bool:
        """True when every token reads every token (the mask can be skipped)."""
        return bool(self._space_mask.all())
