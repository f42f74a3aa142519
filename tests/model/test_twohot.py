import torch

from system.model.twohot import TwoHotBins, symexp, symlog


def signed_values() -> torch.Tensor:
    magnitudes = torch.logspace(-3, 4, 57, dtype=torch.float64)
    return torch.cat([magnitudes, -magnitudes, torch.zeros(1, dtype=torch.float64)])


def test_symexp_inverts_symlog():
    y = signed_values()
    torch.testing.assert_close(symexp(symlog(y)), y)


def test_two_hot_round_trip_for_signed_values_from_1e_3_to_1e4():
    bins = TwoHotBins(255).double()
    y = signed_values()
    target = bins.encode(y)
    assert torch.allclose(target.sum(-1), torch.ones_like(y))
    assert ((target > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(bins.decode_probs(target), y, rtol=1e-9, atol=1e-12)


def test_expected_value_of_a_two_hot_target_is_the_target_in_float32():
    bins = TwoHotBins(101)
    y = signed_values().float()
    torch.testing.assert_close(bins.decode_probs(bins.encode(y)), y, rtol=1e-4, atol=1e-6)


def test_cross_entropy_is_smallest_at_the_target_and_has_no_target_gradient():
    bins = TwoHotBins(255)
    y = torch.tensor([3.0], requires_grad=True)
    logits = torch.log(bins.encode(y.detach()).clamp_min(1e-12)).requires_grad_(True)
    other = torch.zeros(1, 255)
    assert bins.cross_entropy(logits, y) < bins.cross_entropy(other, y)
    bins.cross_entropy(logits, y).sum().backward()
    assert y.grad is None and logits.grad is not None
