"""Ray actors that act: thin shells around `system/` objects (logic lives in `system/`).

Built: crafter_env_runner (RLlib env runners writing replay chunks), behavior_module (the random RLModule they
act with), world_model_service (batched `act` over per-episode KV-cache slots, versioned weights). Planned:
the acting RLModule that calls the service, imagination workers. See docs/architecture.md, "Runtime".
"""
