"""Open-loop report helpers: the own-vs-other error ratio that a context-blind prediction cannot push below 1."""

import torch

from system.imagination.open_loop import own_over_other


def test_own_over_other_is_own_clip_error_over_the_mean_error_to_other_clips():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(5, 3, 4, 2, generator=g)
    predicted = truth + 0.1 * torch.randn(5, 3, 4, 2, generator=g)
    errors = torch.tensor([[((predicted[i] - truth[j]) ** 2).mean().item() for j in range(5)] for i in range(5)])
    own = errors.diagonal().mean()
    other = errors[~torch.eye(5, dtype=torch.bool)].mean()
    assert abs(own_over_other(predicted, truth) - float(own / other)) < 1e-5
    assert own_over_other(truth, truth) < 1e-6
    # a prediction that ignores its clip (the same for all) scores about 1 or more, never near 0
    blind = truth.mean(0, keepdim=True).expand_as(truth)
    assert own_over_other(blind, truth) > 0.7
