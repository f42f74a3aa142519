"""Typed YAML configuration: defaults, file values, dotted overrides, and errors that name the key."""

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from system.run.config import Config, load
from system.run.typed_config import ConfigError, dump_yaml, load_config


@dataclass
class Inner:
    depth: int = 2
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    path: Optional[str] = None


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_defaults_file_and_overrides_compose(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner:\n  depth: 3\n  sizes: [4, 5, 6]\n")
    cfg = load_config(Outer, path, ["inner.rate=2", "inner.depth=7", "flag=true", "inner.path=/tmp/w"])
    assert cfg.name == "y" and cfg.flag is True
    assert cfg.inner.depth == 7 and cfg.inner.sizes == (4, 5, 6) and cfg.inner.path == "/tmp/w"
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.kind == "a"


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  detph: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*inner\.detph"):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match=r"inner\.nope"):
        load_config(Outer, None, ["inner.nope=1"])


@pytest.mark.parametrize(
    "override, key",
    [("inner.depth=2.5", "inner.depth"), ("inner.depth=true", "inner.depth"), ("flag=1", "flag"),
     ("inner.kind=c", "inner.kind"), ("inner.sizes=[1, x]", r"inner.sizes\[1\]"), ("inner=3", "inner")],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(Outer, None, [override])


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Outer, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(Outer, None, ["novalue"])


def test_dump_round_trip(tmp_path):
    cfg = load_config(Outer, None, ["inner.depth=9", "inner.kind=b"])
    dump_yaml(cfg, tmp_path / "out.yaml")
    assert load_config(Outer, tmp_path / "out.yaml") == cfg
    assert yaml.safe_load((tmp_path / "out.yaml").read_text())["inner"]["sizes"] == [1, 2]


def test_project_configs_load_and_are_consistent():
    """Every shipped config loads, its dynamics matches its tokenizer's bottleneck, its long batches exceed the
    context (paper 3.2), and both models build (on the meta device: no memory for the paper-size ones)."""
    from pathlib import Path

    import torch

    from system.model.dynamics import Dynamics, check_matches_tokenizer
    from system.model.tokenizer import Tokenizer
    from system.training.batch_schedule import BatchSchedule

    paths = sorted(Path("configs").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"smoke", "crafter", "minerl"}
    for path in paths:
        cfg = load(["--config", str(path)])
        assert isinstance(cfg, Config)
        check_matches_tokenizer(cfg.dynamics.model, cfg.tokenizer.model)
        BatchSchedule(cfg.dynamics.train.schedule).check_context(cfg.dynamics.model.transformer.context)
        with torch.device("meta"):
            Tokenizer(cfg.tokenizer.model)
            Dynamics(cfg.dynamics.model)
    with pytest.raises(ConfigError, match="unexpected argument"):
        load(["--bogus"])


def test_an_imagination_context_longer_than_the_dynamics_window_names_both_keys():
    from system.run.config import load
    from system.run.typed_config import ConfigError

    with pytest.raises(ConfigError) as error:
        load(["--config", "configs/smoke.yaml", "imagination.train.context=32"])
    message = str(error.value)
    assert "imagination.train.context = 32" in message and "dynamics.model.transformer.context = 16" in message
