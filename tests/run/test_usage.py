"""usage(): names every config file and every top-level section."""

from system.run.usage import CONFIGS, usage


def test_usage_names_every_config_file():
    text = usage()
    assert all(p.name in text for p in CONFIGS.glob("*.yaml"))
    assert "dynamics" in text and "replay" in text
