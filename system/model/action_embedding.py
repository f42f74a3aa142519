"""Action tokens of the dynamics model (paper section 3.2, "actions"; checklist item 18).

    ActionEmbedding(components, dim, tokens)(actions) : actions (B, T, A) -> (B, T, S_a, D)

`components` is the factored action space (`ActionSpace.components` from `system/envs/action_space.py`, or any
sequence of objects with `.kind` and `.num_classes`): one column of `actions` per component.

- binary / categorical components: an embedding table with `num_classes` rows each, looked up only where the
  label is >= 0 (there is no row for "no label"; -1 contributes nothing).
- continuous components (kind "continuous", one float column each): a linear layer, w_i * a_i + b_i, applied
  only where the value is finite (NaN = no label). No environment uses them yet; SOAR-like robot actions would.

The component embeddings are summed together with a learned base embedding that every frame gets, so a frame
without any label (unlabeled video, step 0 of an episode) gets exactly the base embedding: the paper's learned
"no action" embedding that makes action-free pretraining possible. Each component produces all S_a tokens
(an S_a * D vector reshaped), as the paper encodes each component "into S_a tokens" and sums the results.

Integer actions use -1 for "no label"; float actions (needed when a continuous component is present) use NaN
(or a negative value in a discrete column). The module is shape-stable: masks are multiplications, never
branches on values, so it runs inside a captured generation step.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

DISCRETE_KINDS = ("binary", "categorical")


class ActionEmbedding(nn.Module):
    def __init__(self, components: Sequence, dim: int, tokens: int = 1):
        super().__init__()
        self.dim, self.tokens = dim, tokens
        self.num_components = len(components)
        discrete = [i for i, c in enumerate(components) if c.kind in DISCRETE_KINDS]
        continuous = [i for i, c in enumerate(components) if c.kind == "continuous"]
        unknown = [c for c in components if c.kind not in DISCRETE_KINDS + ("continuous",)]
        if unknown:
            raise ValueError(f"action component {getattr(unknown[0], 'name', unknown[0])!r}: unknown kind "
                             f"{unknown[0].kind!r} (expected binary, categorical or continuous)")
        sizes = [int(components[i].num_classes) for i in discrete]
        width = tokens * dim
        self.base = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        # All discrete tables live in one (sum of classes, S_a * D) matrix; component i owns rows
        # offsets[i] .. offsets[i] + num_classes_i - 1.
        self.table = nn.Parameter(torch.randn(sum(sizes), width) * 0.02) if discrete else None
        offsets = torch.tensor([0] + sizes[:-1], dtype=torch.long).cumsum(0) if discrete else torch.zeros(0)
        self.register_buffer("offsets", offsets.long(), persistent=False)
        self.register_buffer("num_classes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.register_buffer("discrete_columns", torch.tensor(discrete, dtype=torch.long), persistent=False)
        self.register_buffer("continuous_columns", torch.tensor(continuous, dtype=torch.long), persistent=False)
        self.cont_weight = nn.Parameter(torch.randn(len(continuous), width) * 0.02) if continuous else None
        self.cont_bias = nn.Parameter(torch.zeros(len(continuous), width)) if continuous else None

    def forward(self, actions: torch.Tensor | None, batch_shape: tuple[int, int] | None = None) -> torch.Tensor:
        """actions (B, T, A) (or None: every frame unlabeled, then batch_shape = (B, T)) -> (B, T, S_a, D)."""
        if actions is None:
            b, t = batch_shape
            return self.base.expand(b, t, self.tokens, self.dim)
        if actions.shape[-1] != self.num_components:
            raise ValueError(f"actions have {actions.shape[-1]} columns, the action space has "
                             f"{self.num_components} components")
        b, t = actions.shape[:2]
        out = self.base.expand(b, t, self.tokens, self.dim)
        if self.table is not None:
            labels = actions[..., self.discrete_columns]                          # (B, T, A_d)
            labeled = labels >= 0                                                 # NaN >= 0 is False too
            index = torch.where(labeled, labels, torch.zeros_like(labels)).long()
            index = torch.minimum(index, self.num_classes - 1) + self.offsets     # clamp keeps shapes static
            rows = self.table[index] * labeled.unsqueeze(-1).to(self.table.dtype)  # (B, T, A_d, S_a * D)
            out = out + rows.sum(2).view(b, t, self.tokens, self.dim)
        if self.cont_weight is not None:
            values = actions[..., self.continuous_columns].to(self.cont_weight.dtype)  # (B, T, A_c)
            labeled = torch.isfinite(values)
            values = torch.where(labeled, values, torch.zeros_like(values)).unsqueeze(-1)
            rows = (values * self.cont_weight + self.cont_bias) * labeled.unsqueeze(-1).to(values.dtype)
            out = out + rows.sum(2).view(b, t, self.tokens, self.dim)
        return out


def no_action_like(actions: torch.Tensor) -> torch.Tensor:
    """The "no label" version of an action tensor: -1 for integer actions, NaN for float actions."""
    fill = float("nan") if actions.is_floating_point() else -1
    return torch.full_like(actions, fill)
