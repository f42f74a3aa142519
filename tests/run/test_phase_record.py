"""phases.json: a phase counts as finished at its final step; more steps make it unfinished again."""

import pytest

from system.run.phase_record import finished_phases, mark_finished, phase_finished


def test_finished_phases_are_kept_by_step(tmp_path):
    assert not phase_finished(tmp_path, "tokenizer", 4) and finished_phases(tmp_path) == {}
    mark_finished(tmp_path, "tokenizer", 4)
    mark_finished(tmp_path, "dynamics", 8)
    assert phase_finished(tmp_path, "tokenizer", 4) and not phase_finished(tmp_path, "tokenizer", 6)
    assert finished_phases(tmp_path) == {"tokenizer": 4, "dynamics": 8}


def test_a_malformed_record_names_the_file(tmp_path):
    (tmp_path / "phases.json").write_text('{"tokenizer": "done"}')
    with pytest.raises(ValueError, match="phases.json"):
        finished_phases(tmp_path)
