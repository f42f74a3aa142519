import pytest
import torch

from system.imagination.generation import GenerationConfig
from system.imagination.trajectory import decode_trajectory, encode_trajectory
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.training.imagination_trainer import ImaginationTrainConfig, ImaginationTrainer
from tests.helpers.dynamics import TOY_SPACE, one_thread, random_actions, tiny_model  # noqa: F401


def make(**kw):
    model = tiny_model(context=8)
    heads = AgentHeads(AgentHeadsConfig(hidden=16, mtp=1, bins=31), TOY_SPACE.components, 1, 32)
    with torch.no_grad():   # a reward head that says something, so advantages have both signs
        torch.nn.init.normal_(heads.reward.outputs[0].weight, std=0.5)
        heads.continuation.net[-1].bias.fill_(3.0)   # imagined episodes go on (at 0.49 every step would be dead)
    cfg = ImaginationTrainConfig(batch_size=3, context=4, horizon=5, policy_lr=1e-2, value_lr=1e-2, **kw)
    return model, heads, ImaginationTrainer(model, heads, cfg, GenerationConfig(sampling_steps=2), seed=0)


def contexts(g):
    return torch.randn(3, 4, 4, 8, generator=g), random_actions(3, 4, generator=g)


def test_imagined_trajectory_shapes_and_bytes_round_trip():
    _, _, trainer = make()
    traj = trainer.imagine(*contexts(torch.Generator().manual_seed(0)))
    assert traj.agent.shape == (3, 6, 1, 32) and traj.actions.shape == (3, 5, 3) and traj.values.shape == (3, 6)
    assert traj.policy_version == 0
    back = decode_trajectory(encode_trajectory(traj))
    assert (back.actions == traj.actions).all() and (back.log_probs == traj.log_probs).all()
    # the acting policy is the prior before any update
    torch.testing.assert_close(torch.from_numpy(traj.log_probs), torch.from_numpy(traj.prior_log_probs))


def test_only_policy_and_value_heads_train_and_the_prior_never_changes():
    model, heads, trainer = make()
    heads.features.observe(torch.randn(7, 32))   # statistics left by phase 2: phase 3 only reads them
    statistics = {n: b.clone() for n, b in heads.features.named_buffers()}
    trainer = ImaginationTrainer(model, heads, trainer.cfg, GenerationConfig(sampling_steps=2), seed=0)
    frozen = {f"model.{n}": p.clone() for n, p in model.named_parameters()}
    frozen.update({f"reward.{n}": p.clone() for n, p in heads.reward.named_parameters()})
    frozen.update({f"continuation.{n}": p.clone() for n, p in heads.continuation.named_parameters()})
    prior = {n: p.clone() for n, p in trainer.prior.named_parameters()}
    policy = {n: p.clone() for n, p in heads.policy.named_parameters()}
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        metrics = trainer.train_step(trainer.imagine(*contexts(g)))
    assert {"pmpo_loss", "kl_prior", "value_ce"} <= set(metrics)
    current = {f"model.{n}": p for n, p in model.named_parameters()}
    current.update({f"reward.{n}": p for n, p in heads.reward.named_parameters()})
    current.update({f"continuation.{n}": p for n, p in heads.continuation.named_parameters()})
    assert all(torch.equal(current[n], p) for n, p in frozen.items())
    assert all(torch.equal(dict(trainer.prior.named_parameters())[n], p) for n, p in prior.items())
    assert any(not torch.equal(dict(heads.policy.named_parameters())[n], p) for n, p in policy.items())
    assert metrics["kl_prior"] > 0
    assert all(torch.equal(b, statistics[n]) for n, b in heads.features.named_buffers())
    assert trainer.imagine(*contexts(g)).policy_version == 3


def test_a_start_context_longer_than_the_dynamics_window_is_an_error():
    model = tiny_model(context=4)
    heads = AgentHeads(AgentHeadsConfig(hidden=8, mtp=0, bins=11), TOY_SPACE.components, 1, 32)
    with pytest.raises(ValueError, match="context = 6 .* dynamics.model.transformer.context = 4"):
        ImaginationTrainer(model, heads, ImaginationTrainConfig(context=6), GenerationConfig())


def test_no_value_or_policy_loss_after_a_predicted_end():
    _, heads, trainer = make()
    traj = trainer.imagine(*contexts(torch.Generator().manual_seed(2)))
    import dataclasses
    import numpy as np
    continues = np.ones_like(traj.continues)
    continues[:, 2] = 0.0       # frame 2 predicted terminal: steps 2.. carry no loss
    ended = dataclasses.replace(traj, continues=continues)
    scrambled = dataclasses.replace(ended, actions=np.concatenate([traj.actions[:, :2],
                                                                   (traj.actions[:, 2:] + 1) % 2], 1))
    state = {k: v.clone() for k, v in heads.state_dict().items()}
    opt = trainer.optimizer.state_dict()
    trainer.train_step(ended)
    after_ended = {k: v.clone() for k, v in heads.policy.state_dict().items()}
    heads.load_state_dict(state)
    trainer.optimizer.load_state_dict(opt)
    trainer.train_step(scrambled)
    for k, v in heads.policy.state_dict().items():
        torch.testing.assert_close(v, after_ended[k])


def replay_rows(g):
    from system.training.agent_trainer import AgentBatch

    def rows():
        return AgentBatch(torch.randn(2, 6, 4, 8, generator=g), random_actions(2, 6, generator=g),
                          (torch.rand(2, 6, generator=g) < 0.3).float(), torch.zeros(2, 6, dtype=torch.bool),
                          torch.full((2,), -1))
    return rows(), rows()


def grads_after_one_step(full_finetune: bool):
    model, heads, trainer = make(full_finetune=full_finetune)
    prior = {n: p.clone() for n, p in trainer.prior.named_parameters()}
    g = torch.Generator().manual_seed(3)
    metrics = trainer.train_step(trainer.imagine(*contexts(g)), replay_rows(g))
    assert all(torch.equal(p, prior[n]) for n, p in trainer.prior.named_parameters())   # never trained
    reached = {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
               for name, module in (("model", model), ("reward", heads.reward), ("continuation", heads.continuation),
                                    ("policy", heads.policy), ("value", heads.value))}
    return reached, metrics


def test_gradients_reach_the_dynamics_and_reward_only_with_full_finetuning():
    default, metrics = grads_after_one_step(False)
    assert default == {"model": False, "reward": False, "continuation": False, "policy": True, "value": True}
    assert "flow_mse" not in metrics                      # a replay batch is ignored without the flag
    full, metrics = grads_after_one_step(True)
    assert all(full.values()), full
    assert {"flow_mse", "bc_nll", "reward_ce", "continuation_bce"} <= set(metrics)   # the replay losses stay on


def test_full_finetuning_without_a_replay_batch_is_an_error_naming_the_flag():
    _, _, trainer = make(full_finetune=True)
    traj = trainer.imagine(*contexts(torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="full_finetune"):
        trainer.train_step(traj)
