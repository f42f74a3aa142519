import torch

from system.objectives.mtp_targets import future_steps


def test_policy_targets_are_the_actions_of_steps_t_plus_1_plus_n():
    actions = torch.arange(6)[None, :, None] * 10          # step s holds action 10 s
    terminals = torch.zeros(1, 6, dtype=torch.bool)
    target, valid = future_steps(actions, terminals, first=1, distances=3)
    assert target[0, 2, :, 0].tolist() == [30, 40, 50]
    assert valid[0, 2].tolist() == [True, True, True]
    assert valid[0, 3].tolist() == [True, True, False]     # step 6 is past the sequence end
    assert valid[0, 5].tolist() == [False, False, False]


def test_reward_targets_start_at_step_t_itself():
    rewards = torch.arange(5.0)[None]
    target, valid = future_steps(rewards, torch.zeros(1, 5, dtype=torch.bool), first=0, distances=3)
    assert target[0, 1].tolist() == [1.0, 2.0, 3.0] and valid[0, 1].all()
    assert valid[0, 4].tolist() == [True, False, False]


def test_targets_past_an_episode_end_are_masked():
    terminals = torch.tensor([[False, False, True, False, False]])   # frame 2 ends the episode
    rewards = torch.arange(5.0)[None]
    _, valid = future_steps(rewards, terminals, first=0, distances=3)
    assert valid[0, 0].tolist() == [True, True, True]      # r_0, r_1, r_2 (arriving at the terminal frame)
    assert valid[0, 1].tolist() == [True, True, False]     # r_3 belongs to no step of this episode
    assert valid[0, 2].tolist() == [True, False, False]
    actions = torch.arange(5)[None, :, None]
    _, valid = future_steps(actions, terminals, first=1, distances=2)
    assert valid[0, 1].tolist() == [True, False]           # a_2 led to the terminal frame; a_3 does not exist
    assert valid[0, 2].tolist() == [False, False]          # the terminal frame takes no action
