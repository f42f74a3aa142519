"""The tokenizer and dynamics config sections: training windows must cover the tokenizer's receptive field."""

import pytest

from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.run.config import load
from system.run.typed_config import ConfigError
from system.training.config import TokenizerSection
from system.training.tokenizer_trainer import TokenizerTrainConfig


def net(context: int) -> TransformerConfig:
    return TransformerConfig(dim=32, depth=4, num_heads=4, num_kv_heads=2, temporal_every=2, context=context)


def test_receptive_field_counts_every_temporal_layer_of_encoder_and_decoder():
    cfg = TokenizerConfig(encoder=net(3), decoder=net(5))        # 2 temporal layers each
    assert cfg.latent_receptive_field == 2 * 2 + 1
    assert cfg.temporal_receptive_field == 5 + 2 * 4


def test_training_windows_shorter_than_the_receptive_field_are_refused():
    model = TokenizerConfig(encoder=net(3), decoder=net(3))      # receptive field 9
    TokenizerSection(model=model, train=TokenizerTrainConfig(seq_len=9))
    with pytest.raises(ValueError, match="tokenizer.train.seq_len = 8 .* 9 frames"):
        TokenizerSection(model=model, train=TokenizerTrainConfig(seq_len=8))


def test_every_shipped_config_trains_its_tokenizer_on_windows_covering_its_receptive_field():
    for name in ("smoke", "crafter", "minerl"):
        cfg = load(["--config", f"configs/{name}.yaml"])
        assert cfg.tokenizer.train.seq_len >= cfg.tokenizer.model.temporal_receptive_field, name


def test_the_config_error_names_the_keys(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer.model.encoder.context"):
        load(["--config", "configs/smoke.yaml", "tokenizer.model.encoder.context=16"])
