"""Generation inside the world model: the KV-cached frame sampler, rollouts, and open-loop evaluation against
real futures.

`rollout(model, cfg, context_z, context_actions, actions)` -> imagined latents (B, H, N_z, D_z), agent features
and decoded frames. Imports the model and objectives (the noise convention of shortcut forcing); never
training, replay or Ray.
"""
