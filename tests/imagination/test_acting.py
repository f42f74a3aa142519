import torch

from system.imagination.acting import LiveActor
from system.imagination.generation import GenerationConfig, context_signal
from system.model.policy_head import PolicyHead
from system.objectives.shortcut import noise_latents
from tests.helpers.dynamics import TOY_SPACE, one_thread, random_actions, tiny_model  # noqa: F401


def uncached_agent(model, z, actions, noise):
    """h of every frame of one episode (1, T, ...) by the full forward over the re-noised frames."""
    t = z.shape[1]
    tau = torch.full((1, t), context_signal(model.k_max, 0.1))
    d = torch.full((1, t), 1.0 / model.k_max)
    return model(noise_latents(z, noise, tau), tau, d, actions).agent[0]


@torch.no_grad()
def test_cached_agent_features_equal_the_uncached_forward_and_episodes_never_mix():
    model = tiny_model(context=4).eval()
    policy = PolicyHead(TOY_SPACE.components, in_dim=32, hidden=16, mtp=0)
    actor = LiveActor(model, policy, GenerationConfig(), batch=2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    # slot 0: one episode of 7 frames (longer than the window C = 4); slot 1: an episode of 3, then one of 4
    z = torch.randn(2, 7, 4, 8, generator=g)
    noise = torch.randn(2, 7, 4, 8, generator=g)
    actions = random_actions(2, 7, generator=g)
    actions[:, 0] = -1
    actions[1, 3] = -1
    starts = torch.zeros(2, 7, dtype=torch.bool)
    starts[:, 0] = True
    starts[1, 3] = True
    got = torch.stack([actor.observe_latents(z[:, i], actions[:, i], starts[:, i], noise[:, i]) for i in range(7)], 1)
    torch.testing.assert_close(got[0], uncached_agent(model, z[:1], actions[:1], noise[:1]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1, :3], uncached_agent(model, z[1:, :3], actions[1:, :3], noise[1:, :3]),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1, 3:], uncached_agent(model, z[1:, 3:], actions[1:, 3:], noise[1:, 3:]),
                               atol=1e-5, rtol=1e-4)
    # another episode in slot 1 leaves slot 0 exactly as it was
    other = LiveActor(model, policy, GenerationConfig(), batch=2)
    z2, a2 = z.clone(), actions.clone()
    z2[1] = torch.randn(7, 4, 8, generator=g)
    a2[1, 1:3] = (a2[1, 1:3] + 1) % 2
    again = torch.stack([other.observe_latents(z2[:, i], a2[:, i], starts[:, i], noise[:, i]) for i in range(7)], 1)
    torch.testing.assert_close(again[0], got[0])


@torch.no_grad()
def test_actions_are_sampled_by_default_and_arg_max_is_a_flag():
    model = tiny_model().eval()
    policy = PolicyHead(TOY_SPACE.components, in_dim=32, hidden=16, mtp=0)
    h = torch.randn(64, 1, 32)
    sampler = LiveActor(model, policy, GenerationConfig(), batch=64, generator=torch.Generator().manual_seed(0))
    greedy = LiveActor(model, policy, GenerationConfig(), batch=64, argmax=True)
    assert torch.equal(greedy.act(h), policy.act(h).mode())
    assert not torch.equal(sampler.act(h), policy.act(h).mode())


@torch.no_grad()
def test_frames_are_encoded_as_a_whole_episode_encoding_would():
    from system.model.tokenizer import Tokenizer, TokenizerConfig
    from system.model.transformer import TransformerConfig

    net = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=1, context=2,
                            attention="dense")
    torch.manual_seed(0)
    tokenizer = Tokenizer(TokenizerConfig(image_size=(16, 32), patch_size=8, num_latents=8, latent_dim=4,
                                          encoder=net, decoder=net)).eval()
    model = tiny_model().eval()
    actor = LiveActor(model, PolicyHead(TOY_SPACE.components, 32, 16, mtp=0), GenerationConfig(), batch=1,
                      tokenizer=tokenizer)
    frames = torch.rand(1, 6, 16, 32, 3)
    whole = model.pack(tokenizer.encode(frames))[0]
    assert actor.window < 6
    for i in range(6):
        torch.testing.assert_close(actor.encode(frames[:, i])[0], whole[i], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_stepping_a_subset_of_slots_equals_stepping_each_episode_alone():
    """Slots stepped in changing subsets (the service's batches) give each episode the h_t it gets alone; slots
    left out keep their caches and frame counters."""
    model = tiny_model(context=4).eval()
    policy = PolicyHead(TOY_SPACE.components, in_dim=32, hidden=16, mtp=0)
    shared = LiveActor(model, policy, GenerationConfig(), batch=3)
    g = torch.Generator().manual_seed(2)
    z, noise = torch.randn(3, 6, 4, 8, generator=g), torch.randn(3, 6, 4, 8, generator=g)
    actions = random_actions(3, 6, generator=g)
    actions[:, 0] = -1
    schedule = [[0, 1, 2], [2], [0, 2], [1], [1, 0], [2, 1, 0], [0], [1], [2], [1], [2]]
    seen, got = [0, 0, 0], [[], [], []]
    for rows in schedule:
        index = torch.tensor(rows)
        frame = [seen[b] for b in rows]
        starts = torch.tensor([f == 0 for f in frame])
        h = shared.observe_latents(torch.stack([z[b, f] for b, f in zip(rows, frame)]),
                                   torch.stack([actions[b, f] for b, f in zip(rows, frame)]), starts,
                                   torch.stack([noise[b, f] for b, f in zip(rows, frame)]), rows=index)
        for i, b in enumerate(rows):
            got[b].append(h[i])
            seen[b] += 1
    assert seen == [5, 6, 6]
    for b in range(3):
        alone = LiveActor(model, policy, GenerationConfig(), batch=1)
        want = [alone.observe_latents(z[b:b + 1, f], actions[b:b + 1, f], torch.tensor([f == 0]), noise[b:b + 1, f])[0]
                for f in range(seen[b])]
        torch.testing.assert_close(torch.stack(got[b]), torch.stack(want), atol=1e-5, rtol=1e-4)
