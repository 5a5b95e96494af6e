"""The best-k bookkeeping of sweeps.driver.checkpoints, as a table of finished trials."""

import math

import pytest

from sweeps.driver.checkpoints import BestCheckpoints


@pytest.mark.parametrize(
    ("keep", "mode", "finished", "dropped", "kept"),
    [
        (None, "max", [("a", 0.1), ("b", None)], [[], []], set()),  # keep all: nothing goes, nothing tracked
        (2, "max", [("a", 0.5), ("b", 0.7), ("c", 0.6)], [[], [], ["a"]], {"b", "c"}),
        (2, "max", [("a", 0.5), ("b", 0.7), ("c", 0.1)], [[], [], ["c"]], {"a", "b"}),  # a weak newcomer goes itself
        (2, "min", [("a", 0.5), ("b", 0.7), ("c", 0.6)], [[], [], ["b"]], {"a", "c"}),
        (1, "max", [("a", 0.5), ("b", 0.5)], [[], ["b"]], {"a"}),  # tie: the first to reach it stays
        (1, "min", [("a", 0.5), ("b", 0.5)], [[], ["b"]], {"a"}),
        (3, "max", [("a", None), ("b", math.nan), ("c", 0.2)], [["a"], ["b"], []], {"c"}),  # no score: nothing to keep
    ],
)
def test_best_k_of_the_sweep_keep_their_checkpoints(keep, mode, finished, dropped, kept):
    book = BestCheckpoints(keep, mode)
    assert [book.finished(t, v) for t, v in finished] == dropped
    assert set(book.kept) == kept


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_keeps_only_its_best_checkpoints(tmp_path):
    import optuna
    from mlflow import MlflowClient

    from tests.conftest import run_cli

    out = tmp_path / "out"
    result = run_cli(
        "run",
        "name=keep",
        "n_trials=4",
        "max_epochs=1",
        "dataset.limit=200",
        "scheduler=none",
        "sampler=random",
        "resources.num_cpus=2",
        "resources.keep_checkpoints=1",
        f"output_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    kept = sorted(out.glob("ray/keep/*/checkpoint_*"))
    assert len({p.parent for p in kept}) == 1, kept
    study = optuna.load_study(study_name="keep", storage=f"sqlite:///{out / 'optuna.db'}")
    # The one kept is the best trial's, and its model went to MLflow at the end.
    assert study.best_trial.user_attrs["checkpoint"].startswith(str(kept[0].parent))
    assert "Best model: " in result.stdout
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id], "tags.`sweeps.kind` = 'trial'")
    assert sum("sweeps.checkpoint" in r.data.tags for r in runs) == 3
