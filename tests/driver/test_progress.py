"""The terminal progress line, as a table of events."""

import io

from sweeps.driver.progress import Progress


def test_progress_counts_best_and_time_left():
    p = Progress(total=4, metric="val_accuracy", mode="max", out=io.StringIO(), started=0.0)
    p.trial_started()
    p.trial_started()
    assert p.line("COMPLETE", "", 10.0).startswith("  [0/4 done, 2 running")
    p.trial_finished("COMPLETE", "", 0.91)
    p.trial_finished("PRUNED")
    p.trial_started()
    p.trial_finished("FAILED", "RuntimeError: boom")
    line = p.line("FAILED", "RuntimeError: boom", 30.0)
    assert "[3/4 done, 0 running, 1 stopped early, 1 failed]" in line
    assert "best val_accuracy 0.9100" in line and "30 s elapsed, ~10 s left" in line
    assert line.endswith("last: failed: RuntimeError: boom")


def test_min_mode_keeps_the_lowest():
    p = Progress(total=2, metric="val_loss", mode="min", out=io.StringIO(), started=0.0)
    for value in (0.5, 0.3):
        p.trial_started()
        p.trial_finished("COMPLETE", "", value)
    assert p.best == 0.3
    assert "~0 s left" in p.line("COMPLETE", "", 300.0) and "5.0 min elapsed" in p.line("COMPLETE", "", 300.0)
