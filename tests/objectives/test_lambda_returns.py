import pytest
import torch

from system.objectives.lambda_returns import alive_weights, lambda_returns


def test_lambda_returns_by_hand_with_a_terminal_in_the_middle():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    continues = torch.tensor([[1.0, 1.0, 0.0, 1.0]])     # frame 2 is terminal
    values = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    r3 = 40.0
    r2 = 3.0 + gamma * 1.0 * ((1 - lam) * 40.0 + lam * r3)
    r1 = 2.0 + gamma * 0.0 * ((1 - lam) * 30.0 + lam * r2)   # nothing flows past the terminal frame
    r0 = 1.0 + gamma * 1.0 * ((1 - lam) * 20.0 + lam * r1)
    expected = torch.tensor([[r0, r1, r2]])
    assert r1 == 2.0 and r0 == pytest.approx(1.0 + 0.9 * (10.0 + 1.0))
    torch.testing.assert_close(lambda_returns(rewards, continues, values, gamma, lam), expected)


def test_defaults_are_the_paper_gamma_and_lambda():
    rewards, continues, values = torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([[0.0, 0.0, 1.0]])
    r1 = 0.997 * 1.0
    r0 = 0.997 * (0.05 * 0.0 + 0.95 * r1)
    torch.testing.assert_close(lambda_returns(rewards, continues, values), torch.tensor([[r0, r1]]))


def test_no_loss_weight_from_a_terminal_frame_on():
    continues = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    assert alive_weights(continues).tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="B, H"):
        lambda_returns(torch.zeros(1, 3), torch.zeros(1, 4), torch.zeros(1, 3))
