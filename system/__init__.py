"""Dreamer 4 library: world model, objectives, replay store, data readers and environments.

Usable from a notebook with no cluster; the Ray shells live in `actors/` and `learners/`.
"""
