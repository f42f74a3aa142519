"""Ray actors that act (not built yet; they come with the Ray runtime issue).

Planned, per docs/architecture.md and the design notes: env actors (vectors of gymnasium envs writing chunks to
the replay store), the world-model service (batched inference with per-episode KV caches,
`system.imagination.generation`), imagination workers, and the evaluator. Each is a thin shell around a
`system/` object; logic lives in `system/`.
"""
