"""Run plumbing: the config schema and its typed loader, the run directory, the metrics log (and wandb), images
and videos, progress bars.

`cfg = load(["--config", "configs/smoke.yaml", "seed=1"])`. The schema is assembled from the section dataclasses
that live beside what they configure; it never imports the phases that read it.
"""
