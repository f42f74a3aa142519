"""metrics.jsonl: rewinding a phase to its checkpoint step drops only the lines of steps that will be redone."""

import json

from system.run.metrics_log import MetricsLog


def test_rewind_drops_the_lines_after_the_checkpoint_and_the_phase_evaluation(tmp_path):
    log = MetricsLog(tmp_path, console=None)
    for step in (2, 4):
        log.write("tokenizer", step, {"loss": 1.0})
    log.write("tokenizer_eval", 4, {"psnr": 9.0})
    for step in (2, 4, 6):
        log.write("dynamics", step, {"loss": 1.0})
    log.file.write('{"phase": "dynamics", "st')  # the kill cut the last line
    log.rewind("dynamics", 4, drop=("dynamics_eval",))
    log.write("dynamics", 6, {"loss": 0.5})
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in lines] == [("tokenizer", 2), ("tokenizer", 4), ("tokenizer_eval", 4),
                                                        ("dynamics", 2), ("dynamics", 4), ("dynamics", 6)]
    assert lines[-1]["loss"] == 0.5


def test_rewind_drops_every_line_of_the_dropped_phases(tmp_path):
    log = MetricsLog(tmp_path, console=None)
    log.write("eval", 3, {"score": 1.0})
    log.rewind("eval", 0, drop=("eval",))
    log.close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""
