"""One optimisation step each, with its state: the tokenizer and dynamics trainers, the batch-length schedule,
the optimiser and learning-rate schedule, checkpoints, and the `tokenizer:` / `dynamics:` config sections.

`metrics = trainer.step(batch)`; `trainer.state_dict()` holds everything a resume needs. Imports model,
objectives and imagination; knows nothing of replay, Ray or the run directory (phases feed it batches).
"""
