"""Ray actors that learn (not built yet; they come with the Ray runtime issue).

Planned: the world-model learner (tokenizer then dynamics: today `system.phases.train_tokenizer` and
`system.phases.train_dynamics` run the same steps in one process) and the agent learner (phases 2 and 3). Each
is a thin shell around a `system/training` trainer, data-parallel with torch.distributed inside the actors.
"""
