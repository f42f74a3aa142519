"""The RLModule that env runners act with before a policy exists: uniform random factored actions.

    spec = RLModuleSpec(module_class=UniformActionModule, model_config={"seed": 3})

In:  batch[Columns.OBS] (N, H, W, 3) uint8, one row per sub-env of the runner's vector env.
Out: {Columns.ACTIONS: (N, A) int64}, each component uniform over its classes (a MultiDiscrete action space).

Once a policy exists the runners act with actors/service_policy_module.py instead (EnvRunnerSpec.policy =
"service"): it keeps no model and no KV cache, only a (slot, frame) handle into the world-model service per
episode. See docs/architecture.md, "Runtime".
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule


class UniformActionModule(TorchRLModule):
    def setup(self):
        self.generator = torch.Generator().manual_seed(int(self.model_config.get("seed", 0)))
        self.nvec = [int(n) for n in self.action_space.nvec]

    def _forward(self, batch, **kwargs):
        rows = batch[Columns.OBS].shape[0]
        actions = [torch.randint(n, (rows,), generator=self.generator) for n in self.nvec]
        return {Columns.ACTIONS: torch.stack(actions, dim=-1)}
