"""Tables and plots of one finished sweep, from its Optuna study and its MLflow runs.

`make_report` (behind `python -m sweeps report NAME` and `sweeps.report`) writes `<output_dir>/reports/NAME/`:

- `trials.csv`, `trials.parquet`: one row per Optuna trial (columns: see `build_trials_frame`);
- each plot twice, `<plot>.png` (matplotlib) and `<plot>.html` (interactive plotly, self-contained
  so it renders offline and inside the MLflow UI): `optimization_history`, `param_importances`
  (with >= 2 completed trials and >= 1 param, when Optuna's evaluator can rank them; fANOVA learns
  from at most `importances.IMPORTANCE_TRIALS` of them, a seeded sample, and its title says so),
  `parallel_coordinate`, `slice`, `learning_curves` (val_accuracy per epoch of the top 5 completed
  trials) and `pareto_front` (studies with several objectives only);

and logs every file to the sweep's MLflow parent run under `report/`.

MLflow is read through the `tracking` package only, imported when a report is written, so the
pure table functions load neither MLflow nor Ray nor Keras.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import optuna
import optuna.visualization as vis
import optuna.visualization.matplotlib as vis_mpl
import pandas as pd

from sweeps.core.errors import ConfigError
from sweeps.core.metrics import EPOCH_METRICS
from sweeps.core.outcomes import state_name
from sweeps.core.records import RUN_ID_ATTR
from sweeps.driver.warmstart import own_trials
from sweeps.storage.storages import open_storage

if TYPE_CHECKING:
    from tracking import RunRecord

CURVE_METRIC = "val_accuracy"
TOP_CURVES = 5


def frame_columns(param_names: Sequence[str] = (), n_objectives: int = 1) -> list[str]:
    """The documented columns of the trials frame, in order."""
    values = [f"value.{i}" for i in range(n_objectives)] if n_objectives > 1 else []
    metrics = [f"{kind}_{m}" for m in EPOCH_METRICS for kind in ("final", "best")]
    return [
        "number",
        "state",
        "value",
        *values,
        *(f"param.{p}" for p in param_names),
        *metrics,
        "epochs",
        "duration_s",
        "node",
        "mlflow_run_id",
    ]


# ---------------------------------------------------------------- the trials table


def _best(metric: str, values: Sequence[float]) -> float:
    if not values:
        return math.nan
    return min(values) if "loss" in metric else max(values)


def _objective(trial: optuna.trial.FrozenTrial, index: int) -> float:
    values = trial.values
    return float(values[index]) if values is not None and index < len(values) else math.nan


def _epochs(trial: optuna.trial.FrozenTrial, histories: Mapping[str, Sequence[tuple[int, float]]]) -> int:
    # MLflow steps are the trials' epochs; Optuna's intermediate steps are the same epochs.
    steps = [step for points in histories.values() for step, _ in points] or list(trial.intermediate_values)
    return int(max(steps)) if steps else 0


def _match_runs(trials: Sequence[optuna.trial.FrozenTrial], runs: Mapping[str, RunRecord]) -> dict[int, RunRecord]:
    """Trial number -> its MLflow run: by the run id Optuna kept, else by the run's trial-number tag."""
    by_number = {run.tags.get("optuna.trial_number"): run for run in runs.values()}
    matched = {}
    for trial in trials:
        run = runs.get(trial.user_attrs.get(RUN_ID_ATTR, "")) or by_number.get(str(trial.number))
        if run is not None:
            matched[trial.number] = run
    return matched


def _row(trial: optuna.trial.FrozenTrial, run: RunRecord | None, n_objectives: int) -> dict[str, Any]:
    histories = run.histories if run is not None else {}
    row: dict[str, Any] = {"number": trial.number, "state": state_name(trial), "value": _objective(trial, 0)}
    if n_objectives > 1:
        row.update({f"value.{i}": _objective(trial, i) for i in range(n_objectives)})
    row.update({f"param.{k}": v for k, v in trial.params.items()})
    for metric in EPOCH_METRICS:
        points = histories.get(metric, ())
        row[f"final_{metric}"] = float(points[-1][1]) if points else math.nan
        row[f"best_{metric}"] = _best(metric, [v for _, v in points])
    row["epochs"] = _epochs(trial, histories)
    # Optuna's clock runs from proposal to result; MLflow's end time moves when the best model is logged later.
    row["duration_s"] = trial.duration.total_seconds() if trial.duration is not None else math.nan
    row["node"] = run.tags.get("sweeps.node", "") if run is not None else ""
    row["mlflow_run_id"] = trial.user_attrs.get(RUN_ID_ATTR) or (run.run_id if run is not None else "")
    return row


def build_trials_frame(study: optuna.Study, runs: Mapping[str, RunRecord]) -> pd.DataFrame:
    """One row per Optuna trial, ordered by trial number.

    Columns: `number`; `state` (a finished trial's outcome: COMPLETE, PRUNED, INFEASIBLE, FAILED,
    INTERRUPTED, NOT_RUN; else Optuna's state, RUNNING or WAITING); `value` (the objective, the first one of several; NaN unless COMPLETE) and, for several
    objectives, `value.0`, `value.1`, ...; `param.<name>` per searched parameter (empty where a
    conditional one was not used); `final_<m>` and `best_<m>` for m in val_accuracy, val_loss,
    train_accuracy, train_loss (last epoch's value; max of accuracies, min of losses; NaN without
    epochs); `epochs` (epochs reported); `duration_s`; `node` (MLflow tag `sweeps.node`, or "");
    `mlflow_run_id`. `runs` maps MLflow run ids to trial runs with their histories.
    """
    trials = sorted(own_trials(study.get_trials(deepcopy=False)), key=lambda t: t.number)  # not a warm start's
    n_objectives = len(study.directions)
    matched = _match_runs(trials, runs)
    params = sorted({name for t in trials for name in t.params})
    rows = [_row(t, matched.get(t.number), n_objectives) for t in trials]
    frame = pd.DataFrame(rows, columns=frame_columns(params, n_objectives))
    return frame.astype({"number": "int64", "epochs": "int64"})


def format_table(frame: pd.DataFrame, metric: str, mode: str, *, limit: int | None = None) -> str:
    """The trials best first: completed ones by objective, then the rest by their best epoch."""
    if frame.empty:
        return "no trials"
    best, final = f"best_{metric}", f"final_{metric}"
    keys = ["value", best] if best in frame else ["value"]
    ordered = frame.sort_values([*keys, "number"], ascending=[mode == "min"] * len(keys) + [True], na_position="last")
    columns = ["number", "state", "value", *(c for c in (best, final) if c in frame), "epochs", "duration_s"]
    if frame["node"].astype(str).str.len().gt(0).any():
        columns.append("node")
    shown = ordered[columns].head(limit) if limit else ordered[columns]
    seconds = {"duration_s": lambda v: "-" if pd.isna(v) else f"{v:.1f}"}
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", formatters=seconds, na_rep="-")


# ---------------------------------------------------------------- loading


def known_sweeps(output_dir: Path, study_storage: str | None = None) -> list[str]:
    """Study names in the study storage (default `<output_dir>/optuna.db`, never created here)."""
    if study_storage is None and not (output_dir / "optuna.db").is_file():
        return []
    return sorted(optuna.study.get_all_study_names(open_storage(output_dir, study_storage)))


def load_sweep_study(name: str, output_dir: Path, study_storage: str | None = None) -> optuna.Study:
    names = known_sweeps(output_dir, study_storage)
    if name not in names:
        fix = (
            f"pick one of: {', '.join(names)} (python -m sweeps report <name>)"
            if names
            else "run a sweep first (python -m sweeps run name=<name>), or set output_dir=<the sweep's folder>"
        )
        raise ConfigError("name", f"no sweep named {name!r} in {output_dir}", fix)
    # A report never samples: a seeded sampler just keeps Optuna from building an unseeded default.
    return optuna.load_study(
        study_name=name, storage=open_storage(output_dir, study_storage), sampler=optuna.samplers.RandomSampler(seed=0)
    )


# ---------------------------------------------------------------- plots


@dataclass(frozen=True)
class Plot:
    """One plot in both renderings; `html` returns a plotly figure, `png` matplotlib Axes.

    An optional plot that cannot be drawn is left out instead of failing the report.
    """

    stem: str
    html: Callable[[], Any]
    png: Callable[[], Any]
    optional: bool = False


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's 'experimental' and 'no completed trials' notes are not the report's output."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _objective_names(study: optuna.Study, metric: str | None) -> list[str]:
    if study.metric_names:
        return list(study.metric_names)
    if len(study.directions) == 1:
        return [metric or "Objective Value"]
    return [f"objective {i}" for i in range(len(study.directions))]


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return own_trials(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def can_rank_params(study: optuna.Study) -> bool:
    completed = _completed(study)
    return len(completed) >= 2 and any(t.params for t in completed)


def study_plots(study: optuna.Study, metric: str | None = None) -> list[Plot]:
    """Optuna's plots of the study; with several objectives they show the first, plus a Pareto front."""
    names = _objective_names(study, metric)
    several = len(study.directions) > 1
    first: dict[str, Any] = {"target": (lambda t: t.values[0]), "target_name": names[0]} if several else {"target_name": names[0]}
    plots = [
        Plot(
            "optimization_history",
            lambda: vis.plot_optimization_history(study, **first),
            lambda: vis_mpl.plot_optimization_history(study, **first),
        ),
    ]
    if can_rank_params(study):
        from sweeps.commands.importances import evaluated_once, importance_sample  # sklearn's import: ~3 s

        sample, title = importance_sample(study)
        evaluator = evaluated_once()  # one fANOVA for both files: the html and the png plot the same importances
        plots.append(
            Plot(
                "param_importances",
                lambda: vis.plot_param_importances(sample, evaluator=evaluator, **first).update_layout(title=title),
                lambda: _titled(vis_mpl.plot_param_importances(sample, evaluator=evaluator, **first), title),
                optional=True,
            )
        )
    plots += [
        Plot(
            "parallel_coordinate",
            lambda: vis.plot_parallel_coordinate(study, **first),
            lambda: vis_mpl.plot_parallel_coordinate(study, **first),
        ),
        Plot("slice", lambda: vis.plot_slice(study, **first), lambda: vis_mpl.plot_slice(study, **first)),
    ]
    if several:
        plots.append(
            Plot(
                "pareto_front",
                lambda: vis.plot_pareto_front(study, target_names=names),
                lambda: vis_mpl.plot_pareto_front(study, target_names=names),
            )
        )
    return plots


def _titled(axes: Any, title: str) -> Any:
    axes.set_title(title)
    return axes


def top_completed(frame: pd.DataFrame, study: optuna.Study, n: int = TOP_CURVES) -> pd.DataFrame:
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    done = frame[frame["state"] == "COMPLETE"].dropna(subset=["value"])
    return done.sort_values(["value", "number"], ascending=[not maximize, True]).head(n)


def curves(
    top: pd.DataFrame, runs: Mapping[str, RunRecord], metric: str = CURVE_METRIC
) -> list[tuple[str, list[int], list[float]]]:
    """(label, epochs, values) of each trial in `top` that has a history of `metric`."""
    found = []
    for number, run_id, value in zip(top["number"], top["mlflow_run_id"], top["value"]):
        points = runs[run_id].histories.get(metric, ()) if run_id in runs else ()
        if points:
            found.append((f"#{number} ({value:.4f})", [s for s, _ in points], [v for _, v in points]))
    return found


def learning_curve_plot(lines: list[tuple[str, list[int], list[float]]], metric: str = CURVE_METRIC) -> Plot:
    title = f"{metric} per epoch, top {TOP_CURVES} completed trials"

    def html() -> Any:
        import plotly.graph_objects as go  # optuna.visualization's own dependency

        fig = go.Figure([go.Scatter(x=x, y=y, mode="lines+markers", name=label) for label, x, y in lines])
        return fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, legend_title="trial (objective)")

    def png() -> Any:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5))
        for label, x, y in lines:
            ax.plot(x, y, marker="o", label=label)
        ax.set(title=title, xlabel="epoch", ylabel=metric)
        if lines:
            ax.legend(title="trial (objective)")
        else:
            ax.text(0.5, 0.5, "no completed trial with a history", ha="center", va="center", transform=ax.transAxes)
        return ax

    return Plot("learning_curves", html, png)


def _figure_of(axes: Any) -> Any:
    return axes.figure if hasattr(axes, "figure") else next(iter(axes.flat)).figure


def render(plot: Plot, directory: Path) -> dict[str, Path]:
    """Both files of one plot; none for an optional plot that cannot be drawn."""
    import matplotlib.pyplot as plt

    try:
        with _quiet():
            figure = plot.html()
            png_figure = _figure_of(plot.png())
    except Exception:
        if not plot.optional:
            raise
        plt.close("all")
        # e.g. every completed trial used the same params: the evaluator has nothing to rank.
        return {}
    html_path, png_path = directory / f"{plot.stem}.html", directory / f"{plot.stem}.png"
    # Self-contained: the MLflow UI shows HTML artifacts in a sandboxed frame and offline viewers have no CDN.
    figure.write_html(html_path, include_plotlyjs=True, full_html=True)
    png_figure.savefig(png_path, dpi=120, bbox_inches="tight")
    plt.close(png_figure)
    return {html_path.name: html_path, png_path.name: png_path}


# ---------------------------------------------------------------- writing


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A choice mixing types (e.g. 3 and 'same') is text in Parquet, which wants one type a column."""
    mixed = [c for c in frame.columns if frame[c].dtype == object and frame[c].dropna().map(type).nunique() > 1]
    return frame.astype({c: "string" for c in mixed}) if mixed else frame


def write_tables(frame: pd.DataFrame, directory: Path) -> dict[str, Path]:
    csv, parquet = directory / "trials.csv", directory / "trials.parquet"
    frame.to_csv(csv, index=False)
    _parquet_ready(frame).to_parquet(parquet, index=False)
    return {csv.name: csv, parquet.name: parquet}


@dataclass(frozen=True)
class Report:
    name: str
    directory: Path
    frame: pd.DataFrame
    files: dict[str, Path]
    parent_run_id: str | None  # None: no MLflow parent run found, nothing logged
    logged: list[str]
    against_baseline: tuple[str, ...] = ()  # the champion against the baseline, as the sweep's summary said it


def find_parent_run(output_dir: Path, name: str, tracking_uri: str, experiment: str) -> RunRecord | None:
    """The sweep's MLflow parent run: by the id it recorded (another sweep of this name may share
    the tracking server), else by its name in `experiment`; None where the store holds neither."""
    from tracking import find_sweep_run, get_run

    state = Path(output_dir) / "sweeps" / name / "sweep.json"
    try:
        return get_run(tracking_uri, json.loads(state.read_text())["parent_run_id"])
    except Exception:  # no record (an older sweep), or another store: fall back to the name
        return find_sweep_run(tracking_uri, experiment, name)


def make_report(
    name: str,
    output_dir: Path,
    tracking_uri: str,
    experiment: str,
    study_storage: str | None = None,
    study: optuna.Study | None = None,
) -> Report:
    """Load, tabulate, plot, write, log; raises ConfigError (nothing written) for an unknown sweep.
    `study`: the sweep's study as its driver holds it, so that it is not read a second time."""
    from tracking import log_report_files, trial_histories

    output_dir = Path(output_dir)
    study = study if study is not None else load_sweep_study(name, output_dir, study_storage)
    parent = find_parent_run(output_dir, name, tracking_uri, experiment)
    runs = trial_histories(tracking_uri, parent) if parent is not None else {}
    frame = build_trials_frame(study, runs)
    directory = output_dir / "reports" / name
    directory.mkdir(parents=True, exist_ok=True)
    matplotlib.use("Agg")  # a report is written headless, from a terminal or CI
    files = write_tables(frame, directory)
    metric = parent.params.get("metric") if parent is not None else None
    plots = [*study_plots(study, metric), learning_curve_plot(curves(top_completed(frame, study), runs))]
    for plot in plots:
        files.update(render(plot, directory))
    logged = log_report_files(tracking_uri, parent.run_id, files.values()) if parent is not None else []
    # The sweep's own words (sweeps.sweep.AGAINST_BASELINE), written once its test scores were known.
    versus = tuple(parent.tags.get("sweeps.against_baseline", "").splitlines()) if parent is not None else ()
    return Report(name, directory, frame, files, parent.run_id if parent is not None else None, logged, versus)


def write_report(name: str, output_dir: Path, tracking_uri: str, experiment: str) -> dict[str, Path]:
    """Write the report of sweep `name` under `<output_dir>/reports/<name>/`; file name -> path."""
    return make_report(name, output_dir, tracking_uri, experiment).files
