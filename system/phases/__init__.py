"""The phases of the Dreamer 4 pipeline as loops over replay batches: phase 1a trains the tokenizer, phase 1b
the dynamics model (phases 2 and 3, agent finetuning and imagination training, land here too).

Each phase reads its config section, samples the replay store, drives a trainer from system/training, and
leaves checkpoints, metrics and pictures in the run directory; a finished phase loads instead of retraining.
May import every library package; only the driver (system/main.py) imports the phases.
"""
