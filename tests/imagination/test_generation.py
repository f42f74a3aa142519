"""KV-cached generation: the (tau, d) walk, cached == uncached (also after the ring wraps), K = 4 and 64."""

import pytest
import torch

from system.imagination.generation import (
    CachedSampler,
    GenerationConfig,
    context_signal,
    draw_noise,
    rollout,
    rollout_uncached,
    sampling_grid,
)
from tests.helpers.dynamics import one_thread, random_actions, tiny_model  # noqa: F401 (one_thread: autouse fixture)

N_Z, D_Z = 4, 8


def record_signals(model):
    """Forward pre-hook recording every (tau, d) tensor pair fed to the model."""
    seen = []

    def hook(module, args, kwargs):
        seen.append((args[1].detach().clone(), args[2].detach().clone()))
    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


def test_context_level_is_small_corruption_snapped_to_the_grid():
    assert context_signal(64, 0.1) == 58 / 64     # noise 0.1 -> signal 0.9 -> round(57.6) = 58
    assert context_signal(64, 0.0) == 63 / 64     # tau = 1 is never an input
    assert context_signal(16, 0.1) == 14 / 16
    assert GenerationConfig().sampling_steps == 4 and GenerationConfig().context_noise == 0.1


@pytest.mark.parametrize("k", [1, 4, 16])
def test_rollout_feeds_the_model_only_training_grid_signals(k):
    """Each frame walks tau = 0, 1/K, ..., (K-1)/K at d = 1/K (conditioned on the tau it is AT), then one
    context pass at (tau_ctx, d_min); the prefill feeds (tau_ctx, d_min). Every pair is on the grid."""
    k_max = 16
    model = tiny_model(k_max=k_max, context=4).eval()
    seen, handle = record_signals(model)
    g = torch.Generator().manual_seed(0)
    rollout(model, GenerationConfig(sampling_steps=k), torch.randn(2, 3, N_Z, D_Z), random_actions(2, 3),
            random_actions(2, 5), generator=g)
    handle.remove()
    tau_ctx = context_signal(k_max, 0.1)
    prefill, steps = seen[0], seen[1:]
    assert (prefill[0] == tau_ctx).all() and (prefill[1] == 1 / k_max).all()
    expected = ([(i / k, 1 / k) for i in range(k)] + [(tau_ctx, 1 / k_max)]) * 5
    assert len(steps) == len(expected)
    for (tau, d), (tau_want, d_want) in zip(steps, expected):
        assert (tau == tau_want).all() and (d == d_want).all()
    for tau, d in seen:  # the training grid: d = 2^-e, e <= log2 K_max, tau a multiple of d below 1
        levels = -torch.log2(d)
        assert torch.equal(levels, levels.round()) and levels.max() <= 4
        assert torch.equal(tau / d, (tau / d).round()) and (tau <= 1 - d).all()
    assert sampling_grid(k) == [(i / k, 1 / k) for i in range(k)]


@pytest.mark.parametrize("context_frames,horizon", [(3, 7), (0, 6), (6, 3)])
def test_cached_generation_equals_uncached_recompute(context_frames, horizon):
    """Window C = 4: (3, 7) wraps the ring during generation, (0, 6) starts from no context (start frames),
    (6, 3) prefills a context longer than the window. Tolerance 1e-5 (float32; observed ~5e-7)."""
    model = tiny_model(context=4, k_max=16).eval()
    g = torch.Generator().manual_seed(0)
    b = 2
    context = torch.rand(b, context_frames, N_Z, D_Z) * 2 - 1
    ctx_actions, actions = random_actions(b, context_frames, unlabeled=0.3), random_actions(b, horizon)
    noise = draw_noise(b, context_frames, horizon, (N_Z, D_Z), g)
    task = torch.tensor([1, -1])
    cfg = GenerationConfig(sampling_steps=4)
    cached = rollout(model, cfg, context, ctx_actions, actions, noise=noise, task=task)
    reference = rollout_uncached(model, cfg, context, ctx_actions, actions, noise=noise, task=task)
    assert cached.z.shape == (b, horizon, N_Z, D_Z) and cached.agent.shape == (b, horizon, 1, 32)
    assert (cached.z - reference.z).abs().max() < 1e-5
    assert (cached.agent - reference.agent).abs().max() < 1e-5
    # not vacuous: a different context gives a different rollout
    if context_frames:
        other = rollout(model, cfg, context.flip(0), ctx_actions, actions, noise=noise, task=task)
        assert (other.z - cached.z).abs().max() > 1e-4


def test_sampler_reuse_restarts_cleanly():
    """A sampler reused for a second rollout gives the same result as a fresh one (stale slots are masked)."""
    model = tiny_model(context=4, k_max=16).eval()
    g = torch.Generator().manual_seed(0)
    cfg = GenerationConfig()
    sampler = CachedSampler(model, cfg, batch=1)
    first_ctx, second_ctx = torch.randn(1, 4, N_Z, D_Z), torch.randn(1, 2, N_Z, D_Z)
    rollout(model, cfg, first_ctx, None, random_actions(1, 5), generator=g, sampler=sampler)
    actions = random_actions(1, 3)
    noise = draw_noise(1, 2, 3, (N_Z, D_Z), g)
    reused = rollout(model, cfg, second_ctx, None, actions, noise=noise, sampler=sampler)
    fresh = rollout(model, cfg, second_ctx, None, actions, noise=noise)
    assert torch.equal(reused.z, fresh.z)


def test_samplers_sharing_a_cache_switch_k_mid_episode():
    """Two samplers (K = 4, then K = 2) over one cache equal the uncached reference that changes K at the same
    frame: the frames generated with K = 4 are the second reference's context, re-noised with the same noise
    (the generated frames' renoise draws), which is what the cache holds. The window (C = 4) wraps."""
    model = tiny_model(context=4, k_max=16).eval()
    g = torch.Generator().manual_seed(0)
    context, ctx_actions, actions = torch.rand(1, 2, N_Z, D_Z) * 2 - 1, random_actions(1, 2), random_actions(1, 6)
    noise = draw_noise(1, 2, 6, (N_Z, D_Z), g)
    k4 = CachedSampler(model, GenerationConfig(sampling_steps=4), batch=1)
    k2 = CachedSampler(model, GenerationConfig(sampling_steps=2), batch=1, cache=k4.cache)
    k4.prefill(context, ctx_actions, noise.context)
    zs = []
    for h, sampler in enumerate([k4, k4, k4, k2, k2, k2]):
        z, _ = sampler.step(torch.tensor([2 + h]), actions[:, h:h + 1], noise.start[:, h:h + 1],
                            noise.renoise[:, h:h + 1])
        zs.append(z)
    first = rollout_uncached(model, GenerationConfig(sampling_steps=4), context, ctx_actions, actions[:, :3],
                             noise=noise._replace(start=noise.start[:, :3], renoise=noise.renoise[:, :3]))
    then = rollout_uncached(model, GenerationConfig(sampling_steps=2), torch.cat([context, first.z], 1),
                            torch.cat([ctx_actions, actions[:, :3]], 1), actions[:, 3:],
                            noise=noise._replace(context=torch.cat([noise.context, noise.renoise[:, :3]], 1),
                                                 start=noise.start[:, 3:], renoise=noise.renoise[:, 3:]))
    assert (torch.cat(zs, 1) - torch.cat([first.z, then.z], 1)).abs().max() < 1e-5
    # not vacuous: K = 4 throughout gives other frames after the switch
    all_k4 = rollout(model, GenerationConfig(sampling_steps=4), context, ctx_actions, actions, noise=noise)
    assert (all_k4.z[:, 3:] - then.z).abs().max() > 1e-4
    with pytest.raises(ValueError, match="holds 1 rows, the sampler steps 2"):
        CachedSampler(model, GenerationConfig(), batch=2, cache=k4.cache)


def test_k4_and_k64_run_from_the_same_model():
    model = tiny_model(context=8, k_max=64).eval()
    g = torch.Generator().manual_seed(0)
    context = torch.rand(1, 2, N_Z, D_Z) * 2 - 1
    outs = {}
    for k in (4, 64):
        seen, handle = record_signals(model)
        outs[k] = rollout(model, GenerationConfig(sampling_steps=k), context, None, random_actions(1, 2),
                          generator=g).z
        handle.remove()
        assert len(seen) == 1 + 2 * (k + 1)
        assert torch.isfinite(outs[k]).all()
    with pytest.raises(ValueError, match="exceeds the trained K_max"):
        CachedSampler(tiny_model(k_max=16), GenerationConfig(sampling_steps=32), batch=1)
    with pytest.raises(ValueError, match="power of two"):
        GenerationConfig(sampling_steps=3)


def test_the_last_euler_step_lands_on_the_prediction():
    """At tau = (K-1)/K with d = 1/K, z + (z1_hat - z)/(1 - tau) d = z1_hat: a frame ends at the model's
    final x-prediction, not a partial step (checked through a stand-in that predicts a constant)."""
    model = tiny_model(context=4, k_max=16).eval()
    with torch.no_grad():
        model.latent_out.weight.zero_()
        model.latent_out.bias.fill_(0.3)
    out = rollout(model, GenerationConfig(), torch.zeros(1, 1, N_Z, D_Z), None, None, horizon=2,
                  generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.z, torch.full_like(out.z, 0.3), atol=1e-6)


def test_decoding_with_a_tokenizer():
    model = tiny_model(context=4, k_max=16).eval()

    class Decoder:
        def decode(self, z):
            assert z.shape == (1, 3, 8, 4)  # unpacked to (B, T0 + H, N_b, D_b): context first (causal decoder)
            return z.mean(dim=(-2, -1))[..., None, None, None].expand(1, 3, 5, 5, 3)

    out = rollout(model, GenerationConfig(), torch.zeros(1, 1, N_Z, D_Z), None, random_actions(1, 2),
                  generator=torch.Generator().manual_seed(0), tokenizer=Decoder())
    assert out.frames.shape == (1, 2, 5, 5, 3)
    assert torch.allclose(out.frames[0, :, 0, 0, 0], out.z[0].mean(dim=(-2, -1)))  # the generated frames


@pytest.mark.slow
def test_frame_step_compiles_without_graph_breaks_or_recompiles():
    """torch.compile(fullgraph=True) of one frame step: no graph break = no host sync or value branching; a
    second rollout of another horizon reuses the compiled step (error_on_recompile), and results match eager."""
    model = tiny_model(context=4, k_max=16, depth=2).eval()
    cfg = GenerationConfig()
    sampler = CachedSampler(model, cfg, batch=2)
    sampler.step = torch.compile(sampler.step, fullgraph=True, dynamic=False)
    g = torch.Generator().manual_seed(0)
    context = torch.randn(2, 2, N_Z, D_Z)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for horizon in (3, 5):  # 2 + 5 frames wrap the ring of 4
            actions = random_actions(2, horizon)
            noise = draw_noise(2, 2, horizon, (N_Z, D_Z), g)
            compiled = rollout(model, cfg, context, None, actions, noise=noise, sampler=sampler)
            eager = rollout(model, cfg, context, None, actions, noise=noise)
            assert (compiled.z - eager.z).abs().max() < 1e-4


@pytest.mark.parametrize("own_sampler", [True, False])
def test_bfloat16_rollout_keeps_its_dtype(own_sampler):
    """Mixed dtypes: float32 (tau, d) with bfloat16 weights, latents and cache (how a GPU would run it), with a
    sampler given and without one (rollout then builds its cache in the model's dtype)."""
    model = tiny_model(context=4, k_max=16).eval().to(torch.bfloat16)
    sampler = CachedSampler(model, GenerationConfig(), batch=1, dtype=torch.bfloat16) if own_sampler else None
    out = rollout(model, GenerationConfig(), torch.randn(1, 2, N_Z, D_Z, dtype=torch.bfloat16), None,
                  random_actions(1, 5), noise=None, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert out.z.dtype == torch.bfloat16 and torch.isfinite(out.z.float()).all()


def test_context_frames_are_renoised_before_the_model_reads_them():
    """Checklist 5: the prefill feeds the real context as (1 - tau_ctx) noise + tau_ctx z, and each finished
    frame is re-noised the same way in the pass that writes its cache entry (the entry later frames read)."""
    k_max = 16
    model = tiny_model(k_max=k_max, context=8).eval()
    fed = []
    handle = model.register_forward_pre_hook(lambda m, args, kw: fed.append(args[0].detach().clone()),
                                             with_kwargs=True)
    g = torch.Generator().manual_seed(0)
    context = torch.rand(2, 3, N_Z, D_Z) * 2 - 1
    noise = draw_noise(2, 3, 2, (N_Z, D_Z), g)
    cfg = GenerationConfig(sampling_steps=4)
    actions = random_actions(2, 2, generator=g)
    out = rollout(model, cfg, context, None, actions, noise=noise)
    handle.remove()
    tau = context_signal(k_max, cfg.context_noise)
    torch.testing.assert_close(fed[0], (1 - tau) * noise.context + tau * context)
    per_frame = cfg.sampling_steps + 1
    for h in range(2):
        context_pass = fed[1 + per_frame * h + cfg.sampling_steps]
        torch.testing.assert_close(context_pass, (1 - tau) * noise.renoise[:, h:h + 1] + tau * out.z[:, h:h + 1])
    # and the context noise reaches the generated frames (a clean context would ignore it)
    other = noise._replace(context=torch.randn(noise.context.shape, generator=g))
    assert (rollout(model, cfg, context, None, actions, noise=other).z - out.z).abs().max() > 1e-5
