"""The service's imagination half without Ray (tiny models, real Crafter frames): a request's rollouts are the phase-3
trainer's for the same models, contexts and seed, they do not depend on what shares the batch, they carry the
weights version, and bad requests or missing weights are refused by name."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from system.imagination.acting_service import ActingService
from system.imagination.imagine_service import ImagineRequest
from system.training.imagination_trainer import ImaginationTrainConfig, ImaginationTrainer
from tests.helpers.acting import GENERATION, tiny_models
from tests.helpers.dynamics import one_thread  # noqa: F401

FIELDS = ("agent", "actions", "log_probs", "prior_log_probs", "rewards", "continues", "values")
T0, H = 2, 3


def service_and_models(version: int = 3):
    tokenizer, dynamics, heads = tiny_models(seed=0)
    prior = copy.deepcopy(tiny_models(seed=1)[2].policy)   # not the acting policy: the log-probs differ
    service = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=1, heads=heads, prior=prior)
    service.load_weights(version, {"heads": heads.state_dict(), "prior": prior.state_dict()})
    return service, (tokenizer, dynamics, heads, prior)


def contexts(crafter_frames, rows: int, seed: int, first: int = 0):
    """rows start contexts of T0 frames: frames first.. of one Crafter clip (one world generation per test)."""
    frames = crafter_frames(11, 5 * T0)[first * T0:(first + rows) * T0].reshape(rows, T0, 64, 64, 3)
    actions = np.random.default_rng(seed).integers(0, 17, (rows, T0, 1))
    return frames, actions


def in_driver(models, frames, actions, seed: int):
    """What phase 3's trainer imagines from these contexts with its generator seeded `seed`."""
    tokenizer, dynamics, heads, prior = models
    trainer = ImaginationTrainer(dynamics, heads, ImaginationTrainConfig(batch_size=len(frames), context=T0,
                                                                         horizon=H), GENERATION, seed=seed)
    trainer.prior.load_state_dict(prior.state_dict())
    with torch.no_grad():
        z = dynamics.pack(tokenizer.encode(torch.from_numpy(frames).float() / 255.0))
    return trainer.imagine(z, torch.from_numpy(actions).long()), z.numpy()


def test_a_request_imagines_what_the_trainer_imagines_whoever_shares_its_batch(crafter_frames):
    service, models = service_and_models(version=3)
    frames, actions = contexts(crafter_frames, 2, seed=11)
    other_frames, other_actions = contexts(crafter_frames, 3, seed=12, first=2)
    expected, z = in_driver(models, frames, actions, seed=5)

    [alone] = service.imagine_batch([service.admit_imagine(ImagineRequest(frames, actions, H, seed=5))])
    for name in FIELDS:  # the same batch of rows, the same generator: bit for bit
        assert np.array_equal(getattr(alone, name), getattr(expected, name)), name
    assert alone.policy_version == 3
    assert not np.allclose(alone.log_probs, alone.prior_log_probs)   # the prior is not the acting policy
    assert len(np.unique(alone.actions)) > 1                         # sampled, not one class everywhere

    mine, theirs = service.imagine_batch([service.admit_imagine(ImagineRequest(frames, actions, H, seed=5)),
                                          service.admit_imagine(ImagineRequest(other_frames, other_actions, H, 6))])
    assert (mine.batch, theirs.batch) == (2, 3)
    assert np.array_equal(mine.actions, expected.actions)
    for name in FIELDS:  # one batch of 5 rows may round differently from a batch of 2 (measured: about 1e-7)
        np.testing.assert_allclose(getattr(mine, name), getattr(expected, name), atol=1e-5, err_msg=name)
    alone_theirs, _ = in_driver(models, other_frames, other_actions, seed=6)
    np.testing.assert_allclose(theirs.agent, alone_theirs.agent, atol=1e-5)

    # start contexts given as packed latents: the same rollouts
    [latent] = service.imagine_batch([service.admit_imagine(ImagineRequest(z, actions, H, seed=5))])
    assert np.array_equal(latent.actions, expected.actions)
    np.testing.assert_allclose(latent.agent, expected.agent, atol=1e-6)

    service.load_weights(4, {"policy": models[2].policy.state_dict()})
    [later] = service.imagine_batch([service.admit_imagine(ImagineRequest(frames, actions, H, seed=5))])
    assert later.policy_version == 4   # stamped with the version that imagined it


def test_bad_requests_and_missing_weights_are_refused_by_name(crafter_frames):
    frames, actions = contexts(crafter_frames, 2, seed=11)
    tokenizer, dynamics, heads = tiny_models(seed=0)
    fresh = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=1, heads=heads,
                          prior=copy.deepcopy(heads.policy))
    with pytest.raises(ValueError, match=r"\['heads', 'prior'\] were loaded"):
        fresh.admit_imagine(ImagineRequest(frames, actions, H, seed=0))
    plain = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=1)
    with pytest.raises(ValueError, match="cannot imagine"):
        plain.admit_imagine(ImagineRequest(frames, actions, H, seed=0))
    service, _ = service_and_models()
    for request, message in [(ImagineRequest(frames[:, :, :32], actions, H, 0), "frames .* must be"),
                             (ImagineRequest(np.repeat(frames, 3, 1), np.repeat(actions, 3, 1), H, 0), "T0 <= 4"),
                             (ImagineRequest(frames, actions[:1], H, 0), "actions"),
                             (ImagineRequest(frames, actions, 0, 0), "horizon = 0"),
                             (ImagineRequest(frames.astype(np.float64), actions, H, 0), "neither uint8 frames")]:
        with pytest.raises(ValueError, match=message):
            service.admit_imagine(request)


def test_rollouts_advanced_piece_by_piece_in_turn_are_the_rollouts_each_gets_alone(crafter_frames):
    """The service interleaves the pieces of several imagine batches (and acts) on one compute thread: each batch
    in progress must keep its own KV cache, so two batches of one size advanced in turn imagine what each
    imagines alone (bit for bit, their start frames encoded a chunk of rows at a time), and their samplers go back
    to the pool for the next batches."""
    service, models = service_and_models(version=3)
    frames, actions = contexts(crafter_frames, 2, seed=11)
    other_frames, other_actions = contexts(crafter_frames, 2, seed=12, first=2)
    expected, _ = in_driver(models, frames, actions, seed=5)
    expected_other, _ = in_driver(models, other_frames, other_actions, seed=6)

    for _ in range(2):   # the second round runs on the samplers the first gave back
        first = service.run_batch([service.admit_imagine(ImagineRequest(frames, actions, H, seed=5))])
        second = service.run_batch([service.admit_imagine(ImagineRequest(other_frames, other_actions, H, seed=6))])
        results, pieces = {}, {"first": 0, "second": 0}
        while len(results) < 2:   # one piece of each in turn: None until the last
            for name, batch in (("first", first), ("second", second)):
                if name not in results:
                    out = batch.advance()
                    pieces[name] += 1
                    if out is not None:
                        results[name] = out[0]
        assert pieces == {"first": T0 + 1 + H, "second": T0 + 1 + H}   # T0 chunks of rows encoded, prefill, frames
        for name in FIELDS:
            assert np.array_equal(getattr(results["first"], name), getattr(expected, name)), name
            assert np.array_equal(getattr(results["second"], name), getattr(expected_other, name)), name
        assert [len(idle) for idle in service.imagination.samplers.values()] == [2]   # both back, one per batch


class PixelTokenizer:
    """A stand-in encoder whose latents are the frame's first pixels: every row's latents differ (the tiny random
    tokenizer maps these Crafter frames to one code, so it cannot tell rows apart)."""

    def __init__(self, cfg):
        self.cfg, self.shape = cfg, (cfg.num_latents, cfg.latent_dim)

    def encode(self, x):
        return x.flatten(2)[..., :self.shape[0] * self.shape[1]].reshape(*x.shape[:2], *self.shape)


def test_the_start_frames_are_encoded_a_chunk_of_rows_per_piece_in_row_order(crafter_frames):
    service, models = service_and_models()
    tokenizer = PixelTokenizer(models[0].cfg)
    service.imagination.tokenizer = tokenizer
    rows = 5
    frames = crafter_frames(11, 5 * T0)[:rows * T0].reshape(rows, T0, 64, 64, 3)
    actions = np.random.default_rng(11).integers(0, 17, (rows, T0, 1))
    batch = service.run_batch([service.admit_imagine(ImagineRequest(frames, actions, H, seed=5))])
    assert len(batch.pending) == T0                      # T0 chunks of ceil(5 / T0) = 3 and 2 rows
    for _ in range(T0):
        assert batch.advance() is None
    expected = models[1].pack(tokenizer.encode(torch.from_numpy(frames).float() / 255.0))
    assert torch.equal(torch.cat(batch.encoded), expected) and not batch.pending
    assert batch.advance() is None and batch.rollout is not None   # the prefill, then the frames
