"""The peers, each written the way its own documentation shows, on the product's model and data.

Each runs in its own process (`python -m benchmarks peer TOOL SPEC RESULT`, started by
`launch`): it pays its own imports, and its records use the same clock as the harness's.
Measurement only adds timestamps: around `Model.fit` (a Keras callback, or `time.time()` around
the call) and at each trial's start and end as the tool itself defines them.

Infeasible points of the space (e.g. kernel 3, dilation 2, padding valid on 8x8 images: block 2
gets a 2x2 input) are not rejected up front by any peer: Keras raises while building the model and
the trial counts as failed, as it would for a user of that tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common import COMPLETE, FAILED, PRUNED, ROOT, Budget, ToolRun, Trial, load_data, model_defaults

LABELS = {
    "kerastuner-random": "KerasTuner RandomSearch",
    "kerastuner-hyperband": "KerasTuner Hyperband",
    "kerastuner-bayes": "KerasTuner BayesianOptimization",
    "raytune-optuna": "Ray Tune + OptunaSearch (plain)",
    "optuna": "Optuna alone (n_jobs)",
    "article-cnn": "the article's CNN (plain Keras, one training)",
}
ARTICLE = LABELS["article-cnn"]  # a baseline, not a search: no peer of the compute-to-target targets


# ----------------------------------------------------------------------------------- shared bits


def _params(sampled: dict[str, Any]) -> dict[str, Any]:
    return {**model_defaults(), **sampled}


def _keras_timing_callback(record: Trial, on_epoch: Any = None) -> Any:
    """A Keras callback that times fit and each epoch into `record` (shared by reference, so
    KerasTuner's deep copy of its callbacks is handled by the caller keeping `record` global)."""
    import keras

    class Timing(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self._fit_start = time.time()

        def on_train_end(self, logs: Any = None) -> None:
            _target(self).fit_s += time.time() - self._fit_start

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._epoch_start = time.time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now, rec = time.time(), _target(self)
            rec.epochs += 1
            rec.epoch_fit_s.append(now - self._epoch_start)
            if logs and "val_accuracy" in logs:
                rec.curve.append((now, float(logs["val_accuracy"])))
            if on_epoch is not None:
                on_epoch(self, epoch, logs or {})

    cb = Timing()
    cb.record = record  # type: ignore[attr-defined]
    return cb


def _target(cb: Any) -> Trial:
    return cb.record if cb.record is not None else _KT_STATE["record"]


# ----------------------------------------------------------------------------------- the space, in each API
# conf/space/small.yaml as each peer's user would write it (tests/test_benchmarks_smoke.py checks
# all three against the product's parse of that file).


def optuna_space(trial: Any) -> dict[str, Any]:
    return {
        "filters": trial.suggest_categorical("filters", [16, 32, 64]),
        "kernel_size": trial.suggest_categorical("kernel_size", [1, 3]),
        "padding": trial.suggest_categorical("padding", ["valid", "same"]),
        "dilation_rate": trial.suggest_categorical("dilation_rate", [1, 2]),
        "kernel_regularizer_strength": trial.suggest_float("kernel_regularizer_strength", 1e-5, 1e-2, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
    }


def kerastuner_space(hp: Any) -> dict[str, Any]:
    return {
        "filters": hp.Choice("filters", [16, 32, 64]),
        "kernel_size": hp.Choice("kernel_size", [1, 3]),
        "padding": hp.Choice("padding", ["valid", "same"]),
        "dilation_rate": hp.Choice("dilation_rate", [1, 2]),
        "kernel_regularizer_strength": hp.Float("kernel_regularizer_strength", 1e-5, 1e-2, sampling="log"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
    }


def ray_space() -> dict[str, Any]:
    from ray import tune

    return {
        "filters": tune.choice([16, 32, 64]),
        "kernel_size": tune.choice([1, 3]),
        "padding": tune.choice(["valid", "same"]),
        "dilation_rate": tune.choice([1, 2]),
        "kernel_regularizer_strength": tune.loguniform(1e-5, 1e-2),
        "learning_rate": tune.loguniform(1e-4, 1e-2),
    }


# ----------------------------------------------------------------------------------- Optuna alone


def run_optuna(budget: Budget, workdir: Path) -> dict[str, Any]:
    """study.optimize(objective, n_trials, n_jobs=K) with a seeded TPESampler; the pruner that
    matches the product's ASHA (asynchronous successive halving, same rungs); threads share one
    process, and TensorFlow its thread pools, as Optuna's n_jobs does."""
    import optuna

    from models.conv2d import build_conv2d

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(budget)
    records: dict[int, Trial] = {}

    def objective(trial: optuna.Trial) -> float:
        params = _params(optuna_space(trial))
        record = records[trial.number] = Trial(str(trial.number), 0.0, 0.0, 0.0, 0, FAILED)
        pruned = []

        def report(cb: Any, epoch: int, logs: dict[str, Any]) -> None:
            trial.report(float(logs["val_accuracy"]), epoch + 1)
            if trial.should_prune():
                pruned.append(epoch + 1)
                cb.model.stop_training = True

        model = build_conv2d(params, data["input_shape"], data["num_classes"])
        model.fit(
            data["x_train"],
            data["y_train"],
            batch_size=int(params["batch_size"]),
            epochs=budget.max_epochs,
            validation_data=(data["x_val"], data["y_val"]),
            verbose=0,
            callbacks=[_keras_timing_callback(record, report)],
        )
        if pruned:
            raise optuna.TrialPruned()
        return max(acc for _, acc in record.curve)

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=budget.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=budget.grace_period, reduction_factor=budget.reduction_factor),
    )
    study.optimize(objective, n_trials=budget.n_trials, n_jobs=budget.slots, catch=(Exception,))
    trials = []
    for t in study.trials:
        record = records.get(t.number, Trial(str(t.number), 0.0, 0.0, 0.0, 0, FAILED))
        record.start = t.datetime_start.timestamp() if t.datetime_start else 0.0
        record.end = t.datetime_complete.timestamp() if t.datetime_complete else record.start
        record.state = {"COMPLETE": COMPLETE, "PRUNED": PRUNED}.get(t.state.name, FAILED)
        trials.append(record)
    return {
        "trials": trials,
        "slots": budget.slots,
        "early_stopping": "SuccessiveHalvingPruner",
        "notes": f"study.optimize(n_jobs={budget.slots}): threads in one process",
    }


# ----------------------------------------------------------------------------------- KerasTuner

_KT_STATE: dict[str, Any] = {"record": None, "pending_start": 0.0}


def _startup_trials() -> int:
    """The product's TPE random start-up trials (conf/sampler/tpe.yaml)."""
    import yaml

    from benchmarks.common import CONF

    return int(yaml.safe_load((CONF / "sampler" / "tpe.yaml").read_text())["n_startup_trials"])


def run_kerastuner(budget: Budget, workdir: Path, kind: str) -> dict[str, Any]:
    """RandomSearch(max_trials=N), Hyperband(max_epochs=E, factor=3) capped at N KerasTuner
    trials, or BayesianOptimization(max_trials=N) with as many random initial points as the
    product's TPE start-up (KerasTuner's default, 3 x 6 dimensions = 18, would leave no Bayesian
    trial in a budget of 12); one trial at a time in one process (no parallel slots on one machine)."""
    hyperband = kind == "hyperband"
    import importlib.util

    import keras_tuner as kt

    from models.conv2d import build_conv2d

    if importlib.util.find_spec("tensorboard") is None:
        # KerasTuner 1.4.8 imports tensorboard in every trial on the TensorFlow backend, and
        # TensorFlow 2.21 no longer installs it: every trial would fail with ModuleNotFoundError.
        raise RuntimeError("KerasTuner needs tensorboard here: pip install tensorboard==2.21.0")
    data = load_data(budget)
    records: list[Trial] = []

    def build(hp: Any) -> Any:
        return build_conv2d(_params(kerastuner_space(hp)), data["input_shape"], data["num_classes"])

    base = {"random": kt.RandomSearch, "hyperband": kt.Hyperband, "bayes": kt.BayesianOptimization}[kind]

    class Timed(base):  # type: ignore[misc, valid-type]
        """Only timestamps: a trial runs from the tuner's request for it to its end."""

        def pre_create_trial(self) -> None:
            _KT_STATE["pending_start"] = time.time()
            super().pre_create_trial()

        def on_trial_begin(self, trial: Any) -> None:
            record = Trial(trial.trial_id, _KT_STATE["pending_start"], 0.0, 0.0, 0, FAILED)
            records.append(record)
            _KT_STATE["record"] = record
            super().on_trial_begin(trial)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            record = _KT_STATE["record"]
            record.end = time.time()
            record.state = COMPLETE if str(trial.status).endswith("COMPLETED") else FAILED

    common = {
        "objective": "val_accuracy",
        "seed": budget.seed,
        "directory": str(workdir),
        "project_name": kind,
        "overwrite": True,
        "max_consecutive_failed_trials": budget.n_trials + 1,  # infeasible points fail; go on as the others do
    }
    if hyperband:
        tuner = Timed(build, max_epochs=budget.max_epochs, factor=budget.reduction_factor, hyperband_iterations=100, **common)
        tuner.oracle.max_trials = budget.n_trials  # the same trial budget (KerasTuner counts promotions as trials)
    elif kind == "bayes":
        tuner = Timed(build, max_trials=budget.n_trials, num_initial_points=_startup_trials(), **common)
    else:
        tuner = Timed(build, max_trials=budget.n_trials, **common)
    callback = _keras_timing_callback(None)  # type: ignore[arg-type]  # reads _KT_STATE: KerasTuner deep-copies callbacks
    tuner.search(
        data["x_train"],
        data["y_train"],
        epochs=budget.max_epochs,
        batch_size=int(model_defaults()["batch_size"]),
        validation_data=(data["x_val"], data["y_val"]),
        callbacks=[callback],
        verbose=0,
    )
    return {
        "trials": records,
        "slots": 1,
        "early_stopping": f"Hyperband (factor {budget.reduction_factor})" if hyperband else "none",
        "notes": "no parallel slots: one trial at a time in one process"
        + ("; promotions of a config are separate KerasTuner trials" if hyperband else "")
        + (f"; Gaussian process after {_startup_trials()} random points (the product's TPE start-up)" if kind == "bayes" else ""),
    }


# ----------------------------------------------------------------------------------- Ray Tune


def ray_train(config: dict[str, Any], data: dict[str, Any], max_epochs: int) -> None:
    """The function trainable of Ray Tune's docs: build, then fit one epoch per tune.report."""
    from ray import tune

    from models.conv2d import build_conv2d

    params = _params(config)
    model = build_conv2d(params, data["input_shape"], data["num_classes"])
    for epoch in range(1, max_epochs + 1):
        start = time.time()
        history = model.fit(
            data["x_train"],
            data["y_train"],
            batch_size=int(params["batch_size"]),
            epochs=epoch,
            initial_epoch=epoch - 1,
            validation_data=(data["x_val"], data["y_val"]),
            verbose=0,
        ).history
        tune.report({"val_accuracy": float(history["val_accuracy"][-1]), "fit_s": time.time() - start})


def run_raytune(budget: Budget, workdir: Path) -> dict[str, Any]:
    """Tuner + OptunaSearch(TPE, seeded) + ASHA (the product's rungs), data through
    tune.with_parameters, defaults otherwise: no reuse_actors (a new worker process per trial), no
    thread settings, Ray's own dashboard and loggers."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    data = load_data(budget)
    records: dict[str, Trial] = {}

    class Timing(tune.Callback):
        """Driver-side timestamps: a trial runs from Tune starting it to Tune ending it (callbacks
        run in the driver's one event loop: no lock needed, and Tune pickles its callbacks)."""

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            records[trial.trial_id] = Trial(trial.trial_id, time.time(), 0.0, 0.0, 0, FAILED)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            record = records[trial.trial_id]
            record.curve.append((time.time(), float(result["val_accuracy"])))
            record.fit_s += float(result["fit_s"])
            record.epoch_fit_s.append(float(result["fit_s"]))
            record.epochs = int(result["training_iteration"])

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = records[trial.trial_id]
            record.end = time.time()
            record.state = COMPLETE if record.epochs >= budget.max_epochs else PRUNED

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = records[trial.trial_id]
            record.end, record.state = time.time(), FAILED

    ray.init(num_cpus=budget.slots)
    tuner = tune.Tuner(
        tune.with_parameters(ray_train, data=data, max_epochs=budget.max_epochs),
        param_space=ray_space(),
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            num_samples=budget.n_trials,
            search_alg=OptunaSearch(sampler=optuna.samplers.TPESampler(seed=budget.seed)),
            scheduler=ASHAScheduler(
                max_t=budget.max_epochs, grace_period=budget.grace_period, reduction_factor=budget.reduction_factor
            ),
        ),
        run_config=tune.RunConfig(name="raytune-optuna", storage_path=str(workdir / "ray"), callbacks=[Timing()]),
    )
    tuner.fit()
    ray.shutdown()
    return {
        "trials": list(records.values()),
        "slots": budget.slots,
        "early_stopping": "ASHA",
        "notes": "function trainable, reuse_actors=False: a new worker (TensorFlow import) per trial",
    }


# ----------------------------------------------------------------------------------- the article's CNN


def article_cnn(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The network the product's source article writes out, as it writes it: Conv2D(32, 5x5, stride
    1, relu) -> MaxPooling2D(2x2, stride 2) -> Conv2D(64, 5x5, relu) -> MaxPooling2D(2x2) -> Flatten
    -> Dense(1000, relu) -> Dense(classes, softmax); categorical cross-entropy on one-hot labels,
    Adam at 1e-3, accuracy as the metric."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, kernel_size=(5, 5), strides=(1, 1), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2)),
            keras.layers.Conv2D(64, (5, 5), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(1000, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(
        loss=keras.losses.categorical_crossentropy, optimizer=keras.optimizers.Adam(learning_rate=1e-3), metrics=["accuracy"]
    )
    return model


ARTICLE_BATCH = 128


def article_fits(input_shape: tuple[int, ...]) -> bool:
    """Whether the article's CNN can be built on these inputs: 16x16 leaves 1x1 after its layers."""
    return min(input_shape[:2]) >= 16


def run_article_cnn(budget: Budget, workdir: Path) -> dict[str, Any]:
    """One training of the article's CNN, seeded, on the product's train split (batch 128, the
    budget's max_epochs, the validation split as its validation data), then scored once on the
    held-out test split when the data has one."""
    import keras

    data = load_data(budget)
    keras.utils.set_random_seed(budget.seed)
    classes = data["num_classes"]
    record = Trial("0", time.time(), 0.0, 0.0, 0, FAILED)
    model = article_cnn(data["input_shape"], classes)
    model.fit(
        data["x_train"],
        keras.utils.to_categorical(data["y_train"], classes),
        batch_size=ARTICLE_BATCH,
        epochs=budget.max_epochs,
        validation_data=(data["x_val"], keras.utils.to_categorical(data["y_val"], classes)),
        verbose=0,
        callbacks=[_keras_timing_callback(record)],
    )
    record.end, record.state = time.time(), COMPLETE
    extra: dict[str, Any] = {"params": int(model.count_params())}
    if data["y_test"] is not None and len(data["y_test"]):
        _, accuracy = model.evaluate(data["x_test"], keras.utils.to_categorical(data["y_test"], classes), verbose=0)
        extra["test_accuracy"] = float(accuracy)
    return {
        "trials": [record],
        "slots": 1,
        "early_stopping": "none",
        "notes": f"the article's network as written, Adam 1e-3, batch {ARTICLE_BATCH}, {budget.max_epochs} epochs, one training",
        "extra": extra,
    }


# ----------------------------------------------------------------------------------- process plumbing

RUNNERS = {
    "kerastuner-random": lambda b, w: run_kerastuner(b, w, "random"),
    "kerastuner-hyperband": lambda b, w: run_kerastuner(b, w, "hyperband"),
    "kerastuner-bayes": lambda b, w: run_kerastuner(b, w, "bayes"),
    "raytune-optuna": run_raytune,
    "optuna": run_optuna,
    "article-cnn": run_article_cnn,
}


def peer_main(tool: str, spec_path: Path, result_path: Path) -> None:
    """Inside the peer's own process: run it and write what it did."""
    spec = json.loads(spec_path.read_text())
    budget, workdir = Budget(**spec["budget"]), Path(spec["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    out = RUNNERS[tool](budget, workdir)
    out["trials"] = [asdict(t) for t in out["trials"]]
    result_path.write_text(json.dumps(out))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a tool's process: this checkout importable (Ray workers inherit it).

    Ray starts its workers at nice 15 (RAY_worker_niceness); on a machine shared with other work
    that measures the neighbours, not the tool, so Ray-based tools get RAY_worker_niceness=0 (the
    same priority as KerasTuner's and Optuna's processes) unless the harness is told otherwise."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **(extra or {})}
    paths = [p for p in (extra or {}).get("PYTHONPATH", "").split(os.pathsep) if p] + [str(ROOT)]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


RAY_EQUAL_PRIORITY = {"RAY_worker_niceness": "0"}


def launch(tool: str, budget: Budget, workdir: Path, timeout_s: float | None = None, ray_nice: bool = False) -> ToolRun:
    """Run one peer in a fresh process; its wall time is the harness's clock around that process."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec, result, log = workdir / "spec.json", workdir / "result.json", workdir / "log.txt"
    spec.write_text(json.dumps({"budget": asdict(budget), "workdir": str(workdir / "work")}))
    result.unlink(missing_ok=True)
    with log.open("w") as fh:
        launched = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks", "peer", tool, str(spec), str(result)],
            cwd=ROOT,
            env=child_env(None if ray_nice or tool != "raytune-optuna" else RAY_EQUAL_PRIORITY),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
        ended = time.time()
    if proc.returncode != 0 or not result.is_file():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{LABELS[tool]} failed (exit {proc.returncode}); log {log}:\n{tail}")
    out = json.loads(result.read_text())
    return ToolRun.from_dict(
        {
            "tool": LABELS[tool],
            "slots": out["slots"],
            "launched": launched,
            "ended": ended,
            "trials": out["trials"],
            "returncode": proc.returncode,
            "early_stopping": out["early_stopping"],
            "notes": out["notes"],
            "log": str(log),
            "extra": out.get("extra", {}),
        }
    )
