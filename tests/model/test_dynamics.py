"""Dynamics model: packing, signal and agent tokens, action conditioning, causality, gradients, overfitting a
tiny batch. The action embedding itself: tests/model/test_action_embedding.py."""

import pytest
import torch

from system.model.dynamics import Dynamics, DynamicsConfig, check_matches_tokenizer
from system.objectives.shortcut import ShortcutConfig, noise_latents, shortcut_loss
from tests.helpers.dynamics import (
    one_thread,  # noqa: F401 (autouse fixture)
    random_actions,
    tiny_model,
)

N_Z, D_Z = 4, 8  # tiny_config: N_b = 8 latents of D_b = 4 packed into N_z = 4 tokens of 8


def test_packing_groups_consecutive_latents_and_round_trips():
    model = tiny_model()
    z = torch.randn(2, 3, 8, 4)
    packed = model.pack(z)
    assert packed.shape == (2, 3, N_Z, D_Z)
    # token j holds latents 2j and 2j+1 side by side
    assert torch.equal(packed[:, :, 1], torch.cat([z[:, :, 2], z[:, :, 3]], -1))
    assert torch.equal(model.unpack(packed), z)
    with pytest.raises(ValueError, match="divisible"):
        DynamicsConfig(latent_tokens=10, packed_tokens=4)


def test_paper_packing_is_256_tokens_of_32():
    cfg = DynamicsConfig()
    assert (cfg.latent_tokens, cfg.latent_dim, cfg.packed_tokens, cfg.packed_dim) == (512, 16, 256, 32)


def test_signal_indices_are_exact_on_the_grid():
    model = tiny_model(k_max=16)
    tau = torch.arange(16).float() / 16
    d = torch.tensor([1, 1 / 2, 1 / 4, 1 / 8, 1 / 16]).repeat(4)[:16]
    tau_index, step_index = model.signal_indices(tau, d)
    assert torch.equal(tau_index, torch.arange(16))
    assert torch.equal(step_index, torch.tensor([0, 1, 2, 3, 4]).repeat(4)[:16])
    # different (tau, d) pairs give different signal tokens
    tokens = model.signal_token(tau[None], d[None])[0, :, 0]
    assert torch.cdist(tokens, tokens).add(torch.eye(16)).min() > 1e-4


def test_action_of_frame_t_conditions_frame_t_and_later_only():
    model = tiny_model().eval()
    z = torch.randn(1, 5, N_Z, D_Z)
    tau, d = torch.full((1, 5), 0.5), torch.full((1, 5), 1 / 16)
    actions = random_actions(1, 5, generator=torch.Generator().manual_seed(0))
    changed = actions.clone()
    changed[0, 2, 2] = (changed[0, 2, 2] + 1) % 9
    with torch.no_grad():
        y, y2 = model(z, tau, d, actions).z1, model(z, tau, d, changed).z1
    assert torch.equal(y[:, :2], y2[:, :2])
    assert (y[:, 2] - y2[:, 2]).abs().max() > 1e-4


def test_agent_tokens_never_change_the_latent_prediction():
    model = tiny_model().eval()
    z = torch.randn(2, 3, N_Z, D_Z)
    tau, d = torch.full((2, 3), 0.25), torch.full((2, 3), 1 / 16)
    with torch.no_grad():
        a = model(z, tau, d, None, task=torch.tensor([0, 1]))
        b = model(z, tau, d, None, task=torch.tensor([2, -1]))
    assert torch.equal(a.z1, b.z1)
    assert a.agent.shape == (2, 3, 1, 32)
    assert (a.agent - b.agent).abs().max() > 1e-4
    no_agent = tiny_model(agent_tokens=0)
    assert no_agent(z, tau, d).agent is None


def test_gradient_reaches_every_parameter():
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    z1 = torch.rand(4, 3, N_Z, D_Z) * 2 - 1
    actions = random_actions(4, 3, generator=g)
    cfg = ShortcutConfig(bootstrap_fraction=0.5, bootstrap_warmup=0)
    loss, _ = shortcut_loss(model, z1, actions, cfg, step=0, generator=g)
    # agent tokens are read by heads only (phase 2): give them a stand-in head loss
    tau, d = torch.full((4, 3), 0.5), torch.full((4, 3), 1 / 16)
    agent = model(z1, tau, d, actions, task=torch.tensor([0, 1, 2, -1])).agent
    (loss + agent.square().mean()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not missing, f"no gradient reaches {missing}"


def test_tiny_model_overfits_a_tiny_batch():
    """Two fixed sequences, fixed noise and signal levels: 40 Adam steps must cut the flow loss by 10x (it reaches ~50x)."""
    model = tiny_model(k_max=16, seed=1)
    g = torch.Generator().manual_seed(0)
    z1 = torch.rand(2, 4, N_Z, D_Z) * 2 - 1
    actions = random_actions(2, 4, generator=g)
    z0 = torch.randn(z1.shape, generator=g)
    tau = torch.tensor([[0.25, 0.5, 0.75, 0.5], [0.5, 0.75, 0.25, 0.9375]])
    signal = (tau, torch.full_like(tau, 1 / 16))
    cfg = ShortcutConfig(bootstrap_warmup=10**9)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_now():
        return shortcut_loss(model, z1, actions, cfg, 0, noise=z0, signal=signal)[0]
    first = loss_now().item()
    for _ in range(40):
        opt.zero_grad()
        loss_now().backward()
        opt.step()
    last = loss_now().item()
    assert last < first / 10, (first, last)
    # and the prediction is the clean latents (x-prediction), not the noisy input
    with torch.no_grad():
        pred = model(noise_latents(z1, z0, tau), *signal, actions).z1
    assert (pred - z1).square().mean() < (noise_latents(z1, z0, tau) - z1).square().mean() / 5


def test_smoke_config_dynamics_matches_its_tokenizer():
    from system.run.config import load
    cfg = load(["--config", "configs/smoke.yaml"])
    check_matches_tokenizer(cfg.dynamics.model, cfg.tokenizer.model)
    assert cfg.dynamics.train.schedule.long_length > cfg.dynamics.model.transformer.context
    Dynamics(cfg.dynamics.model)  # builds
    with pytest.raises(ValueError, match="tokenizer.model.num_latents"):
        check_matches_tokenizer(DynamicsConfig(), cfg.tokenizer.model)


def test_registers_read_the_frame_and_are_read_by_it():
    """Checklist 10: register tokens of frame t are written by that frame's latents (they read them) and the
    latent prediction reads the registers back."""
    model = tiny_model().eval()
    z = torch.randn(1, 2, N_Z, D_Z, requires_grad=True)
    tau, d = torch.full((1, 2), 0.5), torch.full((1, 2), 1 / 16)
    hidden = {}
    handle = model.transformer.register_forward_hook(lambda m, args, out: hidden.setdefault("h", out))
    out = model(z, tau, d)
    handle.remove()
    registers = hidden["h"][:, :, model.slices["registers"]]
    (grad_z,) = torch.autograd.grad(registers[:, 1].square().sum(), z, retain_graph=True)
    assert grad_z[:, 1].abs().max() > 0              # registers of frame 1 read frame 1's latents
    (grad_reg,) = torch.autograd.grad(out.z1.square().sum(), model.registers)
    assert grad_reg.abs().max() > 0                  # and the latent prediction reads the registers
