"""Ray actors that learn (not built yet; they come with the Ray runtime issue).

Planned: the world-model learner (tokenizer then dynamics: today `system.tokenizer_phase` and
`system.dynamics_phase` run the same steps in one process) and the agent learner (phases 2 and 3). Each is a
thin shell around a `system/` trainer, data-parallel with torch.distributed under Ray Train.
"""
