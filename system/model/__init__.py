"""The networks: the block-causal axial transformer, the causal tokenizer, the dynamics model and the action
embedding (the agent heads land here too).

Tensors are (B, T, S, D): B sequences of T frames of S tokens; the frame layout (layout.py) says which tokens
are which. Imports only torch and this package: no training, replay, Ray or Redis.
"""
