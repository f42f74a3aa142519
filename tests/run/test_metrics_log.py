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


def test_a_resumed_run_continues_the_same_wandb_run_and_pictures_reach_it(tmp_path, monkeypatch):
    import numpy as np

    from system.run.media import write_grid, write_video

    monkeypatch.setenv("WANDB_SILENT", "true")
    png = write_grid(tmp_path / "videos" / "grid.png", [[np.zeros((8, 8, 3), np.uint8)]])
    mp4 = write_video(tmp_path / "videos" / "clip.mp4", np.zeros((4, 8, 8, 3), np.uint8))
    ids = []
    for attempt in range(2):  # the first driver, then the resumed one in the same run directory
        log = MetricsLog(tmp_path, wandb_mode="offline", console=None)
        assert log.wandb_run is not None
        ids.append(log.wandb_run.id)
        log.write("tokenizer", attempt, {"loss": 1.0})
        log.media("tokenizer", attempt, "reconstructions", png)
        log.media("dynamics", attempt, "open_loop", mp4)
        log.close()
    assert ids[0] == ids[1] == (tmp_path / "wandb_run_id").read_text().strip()
    offline = sorted((tmp_path / "wandb").glob(f"offline-run-*-{ids[0]}"))
    assert len(offline) == 2  # one per driver, both under the run's id: `wandb sync` joins them
    media = [p.name for p in offline[0].rglob("*") if p.suffix in (".png", ".mp4")]
    assert any(name.endswith(".png") for name in media) and any(name.endswith(".mp4") for name in media), media


def test_rewind_cuts_the_phases_logged_along_the_way_at_the_same_step(tmp_path):
    log = MetricsLog(tmp_path, console=None)
    for step in (1, 2, 3):
        log.write("imagination", step, {"loss": 1.0})
        log.write("live_eval", step, {"mean_return": 1.0})
    log.rewind("imagination", 2, cut=("live_eval",))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in lines] == [("imagination", 1), ("live_eval", 1), ("imagination", 2),
                                                        ("live_eval", 2)]
