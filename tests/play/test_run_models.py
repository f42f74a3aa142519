"""A run's models for play: the newest checkpoint holding the dynamics' weights, --checkpoint alone names its
run, and every unplayable path is an error that names it."""

import shutil

import pytest
import torch

from system.play.run_models import RunError, load_play_models
from system.training.checkpoint import save_checkpoint
from tests.helpers.play_run import tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("play") / "run", seed=0)


def weights(module):
    return torch.cat([p.flatten() for p in module.state_dict().values()])


def test_the_newest_dynamics_weights_of_the_run_are_played(run, tmp_path):
    base = load_play_models(run)
    assert base.checkpoint.name == "dynamics.pt" and base.space.name == "crafter" and not base.dynamics.training
    saved = torch.load(run / "checkpoints" / "dynamics.pt", weights_only=True)["model"]
    assert all(torch.equal(base.dynamics.state_dict()[k], v) for k, v in saved.items())
    later = shutil.copytree(run, tmp_path / "later")
    phase2 = {k: v + 1.0 for k, v in saved.items()}
    save_checkpoint(later / "checkpoints" / "agent.pt", {"model": phase2, "heads": {}, "step": 1})
    save_checkpoint(later / "checkpoints" / "imagination.pt", {"heads": {}, "step": 1})  # heads only: skipped
    models = load_play_models(later)
    assert models.checkpoint.name == "agent.pt"
    assert torch.equal(weights(models.dynamics), weights(base.dynamics) + 1.0)
    chosen = load_play_models(checkpoint=later / "checkpoints" / "dynamics.pt")    # the run from the path
    assert chosen.run_dir.resolve() == later.resolve() and torch.equal(weights(chosen.dynamics), weights(base.dynamics))


def test_what_cannot_be_played_is_an_error_naming_the_path(run, tmp_path):
    with pytest.raises(RunError, match=f"{tmp_path / 'nowhere'}: no such run directory"):
        load_play_models(tmp_path / "nowhere")
    with pytest.raises(RunError, match=f"{tmp_path}: no config.yaml"):
        load_play_models(tmp_path)
    with pytest.raises(RunError, match="missing.pt: no such checkpoint file"):
        load_play_models(checkpoint=tmp_path / "missing.pt")
    broken = shutil.copytree(run, tmp_path / "broken")
    (broken / "checkpoints" / "tokenizer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=f"{broken / 'checkpoints' / 'tokenizer.pt'}: not a loadable weights-only"):
        load_play_models(broken)
    (broken / "checkpoints" / "tokenizer.pt").unlink()
    with pytest.raises(RunError, match=f"checkpoint not found: {broken / 'checkpoints' / 'tokenizer.pt'}"):
        load_play_models(broken)
    other = tiny_run(tmp_path / "other", overrides=("dynamics.model.transformer.dim=32",))
    with pytest.raises(RunError, match="dynamics.pt: its dynamics weights do not fit the run's config.yaml"):
        load_play_models(run, checkpoint=other / "checkpoints" / "dynamics.pt")
    empty = shutil.copytree(run, tmp_path / "empty")
    (empty / "checkpoints" / "dynamics.pt").unlink()
    with pytest.raises(RunError, match="no checkpoint with the dynamics' weights"):
        load_play_models(empty)
