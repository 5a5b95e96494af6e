"""The sweep's story in Markdown, for its parent run's description (`mlflow.note.content`).

Pure: text from plain values, so it is tested with tables and imports nothing heavy. Links are
relative to the UI's own address (`#/experiments/...`), so they work on a local `sweeps ui` and on
a shared tracking server alike.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sweeps.core.outcomes import WORDS

NOTE_LIMIT = 8000  # MLflow's limit on a tag value
# MLflow 3.17's UI takes its mode from its GenAI / Model training switch (remembered per browser,
# GenAI by default) or from this URL parameter; older and newer UIs read the experiment's
# `mlflow.experimentKind` tag, which the tracker sets too. Every link the product writes carries it.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
# The order a reader wants: what worked, what was stopped, what broke (the one vocabulary).
OUTCOME_WORDS = tuple((outcome.value, words) for outcome, words in WORDS.items())


@dataclass(frozen=True)
class Best:
    number: int
    value: float
    params: Mapping[str, Any]
    run_id: str | None


@dataclass(frozen=True)
class Versus:
    """The champion against the baseline: the configured model, evaluated as the sweep's first trial."""

    metric: str
    mode: str
    baseline_number: int
    baseline_outcome: str  # COMPLETE, PRUNED (stopped early), INFEASIBLE, FAILED, NOT_RUN, ...
    baseline_val: float | None  # its best validation value (None: never scored)
    champion_number: int | None
    champion_val: float | None
    baseline_test: float | None = None
    champion_test: float | None = None
    has_test: bool = True
    baseline_detail: str = ""  # why it has no score, or where it stopped
    outside: Sequence[str] = ()  # its values that the space cannot hold, run as configured

    @property
    def baseline_is_best(self) -> bool:
        return self.champion_number is not None and self.champion_number == self.baseline_number


def gain(new: float, old: float, mode: str) -> str:
    """`new` against `old`, signed, and whether that is better for an objective of `mode`."""
    delta = new - old
    if delta == 0:
        return "gain +0.0000 (the same)"
    better = delta > 0 if mode == "max" else delta < 0
    return f"gain {delta:+.4f} ({'better' if better else 'worse'}{'' if mode == 'max' else ': lower is better'})"


def versus_lines(v: Versus) -> list[str]:
    """Plain sentences (Markdown-safe): the champion's validation and test scores against the
    baseline's, each with the signed gain; a sweep whose best trial is the baseline says so."""
    lines = []
    you = f"the baseline (your configured model, trial #{v.baseline_number})"
    if v.baseline_val is None:
        detail = f": {v.baseline_detail}" if v.baseline_detail else ""
        lines.append(f"Against {you}: no comparison, it has no {v.metric} ({v.baseline_outcome.lower()}{detail})")
    elif v.baseline_is_best:
        lines.append(f"The best trial is {you}: {v.metric} {v.baseline_val:.4f}; the search found no better model than yours")
        if v.baseline_test is not None:
            lines.append(f"Its test_accuracy (held-out split): {v.baseline_test:.4f}")
    elif v.champion_val is None:
        lines.append(f"Baseline {you[4:]}: {v.metric} {v.baseline_val:.4f}; no other trial completed")
    else:
        stopped = f" (stopped early: {v.baseline_detail})" if v.baseline_outcome == "PRUNED" and v.baseline_detail else ""
        lines.append(
            f"Champion #{v.champion_number} against {you}: {v.metric} {v.champion_val:.4f} against"
            f" {v.baseline_val:.4f}{stopped}, {gain(v.champion_val, v.baseline_val, v.mode)}"
        )
        if v.champion_test is not None and v.baseline_test is not None:
            lines.append(
                f"test_accuracy (held-out split) {v.champion_test:.4f} against {v.baseline_test:.4f},"
                f" {gain(v.champion_test, v.baseline_test, 'max')}"
            )
        elif v.has_test:
            lines.append("test_accuracy: the baseline's model was not kept, so it was not test-scored")
    if not v.has_test and v.baseline_val is not None:
        lines.append("No test split: the comparison is on the validation split only")
    if v.outside:
        lines.append(f"The baseline ran as configured, outside the space: {'; '.join(v.outside)}")
    return lines


@dataclass(frozen=True)
class RefitStory:
    """refit=true: the champion's params trained on train + validation for its best epoch count."""

    epochs: int = 0
    images: int = 0
    test: float | None = None  # the refit model's test accuracy (None: no test split)
    champion_test: float | None = None  # the champion's own checkpoint's
    registered: str | None = None
    skipped: str | None = None  # why there is no refit model


def refit_lines(r: RefitStory) -> list[str]:
    if r.skipped:
        return [f"Refit: none ({r.skipped})"]
    lines = [
        f"Refit: the champion's params trained on train + validation ({r.images} images) for its best epoch count"
        f" ({r.epochs})" + (f", registered as {r.registered}" if r.registered else "")
    ]
    if r.test is None:
        lines.append("The refit model was not test-scored: the dataset has no test split")
    elif r.champion_test is not None:
        lines.append(
            f"Refit test_accuracy {r.test:.4f} against the champion's own checkpoint {r.champion_test:.4f},"
            f" {gain(r.test, r.champion_test, 'max')}"
        )
    else:
        lines.append(f"Refit test_accuracy {r.test:.4f}")
    return lines


@dataclass(frozen=True)
class SweepStory:
    name: str
    experiment_id: str
    run_id: str  # the parent run
    metric: str
    mode: str
    counts: Mapping[str, int]
    dataset: Mapping[str, str]  # the dataset.* tags: name, digest, train_size, val_size
    command: str
    commit: str | None = None
    best: Best | None = None
    plots: Sequence[str] = ()  # artifact paths of the report, e.g. report/slice.png
    stopped_because: str | None = None
    extra: Sequence[str] = field(default_factory=tuple)  # further Markdown lines (Pareto front, model)
    versus: Versus | None = None  # the champion against the baseline (baseline=true)
    refit: RefitStory | None = None  # refit=true


def view_key(sweep: str) -> str:
    """The key of a sweep's saved runs-table view (URL-safe)."""
    return "sweep-" + re.sub(r"[^A-Za-z0-9_.-]", "-", sweep)


def experiment_link(experiment_id: str, page: str = "", view: str | None = None) -> str:
    """The UI's address of an experiment's page (relative: prefix the UI's base URL), in model-training
    mode, with the saved runs-table view `view` if given."""
    return f"#/experiments/{experiment_id}{page}?{MODEL_TRAINING_VIEW}" + (f"&viewStateShareKey={view}" if view else "")


def run_link(experiment_id: str, run_id: str, tab: str = "") -> str:
    return experiment_link(experiment_id, f"/runs/{run_id}{tab}")


def artifact_link(experiment_id: str, run_id: str, path: str) -> str:
    return run_link(experiment_id, run_id, f"/artifactPath/{path}")


def reproduce_command(argv: Sequence[str], name: str) -> str:
    """The command that runs this sweep again: the `run` arguments it was started with, under a
    new name (the same name would resume it instead)."""
    args = list(argv)
    if args[:1] == ["run"]:
        args = args[1:]
    kept = [a for a in args if not a.startswith(("name=", "+name=", "--"))]
    return " ".join(["python", "-m", "sweeps", "run", f"name={shlex.quote(name + '-again')}", *map(shlex.quote, kept)])


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def counts_line(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[key]} {words}" for key, words in OUTCOME_WORDS if counts.get(key)]
    parts += [f"{n} {key.lower()}" for key, n in counts.items() if n and key not in dict(OUTCOME_WORDS)]
    return f"{sum(counts.values())} trials: " + (", ".join(parts) if parts else "none ran")


def sweep_note(story: SweepStory) -> str:
    """Markdown: best trial with its params and value, counts by outcome, dataset version, the
    command to reproduce it, links to the report's plots. Cut to MLflow's tag limit."""
    s = story
    lines = [f"### Sweep `{s.name}`", ""]
    if s.stopped_because:
        lines += [f"**Stopped:** {s.stopped_because}", ""]
    if s.best is None:
        lines += [f"**Best trial:** none completed ({s.metric}, {s.mode})", ""]
    else:
        trial = f"trial #{s.best.number}"
        if s.best.run_id:
            trial = f"[{trial}]({run_link(s.experiment_id, s.best.run_id)})"
        lines += [f"**Best {trial}:** {s.metric} = **{s.best.value:.4f}** ({s.mode})", ""]
    if s.versus is not None:
        lines += ["**Against your model:**", "", *(f"- {line}" for line in versus_lines(s.versus)), ""]
    if s.refit is not None:
        lines += [*(f"- {line}" for line in refit_lines(s.refit)), ""]
    # The UI shows the first lines until "Show more": the outcome first, the details after.
    table = f" ([all trials, with their params and {s.metric}]({experiment_link(s.experiment_id, '/runs', view_key(s.name))}))"
    lines += [f"**Trials:** {counts_line(s.counts)}{table}", ""]
    d = s.dataset
    if d:
        sizes = (
            f" ({d['dataset.train_size']} train / {d['dataset.val_size']} val)"
            if "dataset.train_size" in d and "dataset.val_size" in d
            else ""
        )
        lines += [
            f"**Dataset:** {d.get('dataset.name', '?')}, version (content digest) `{d.get('dataset.digest', '?')}`{sizes}",
            "",
        ]
    if s.best is not None and s.best.params:
        lines += [
            f"Params of trial #{s.best.number}:",
            "",
            "| param | value |",
            "| --- | --- |",
            *(f"| {k} | {_value(v)} |" for k, v in s.best.params.items()),
            "",
        ]
    at = f" at commit `{s.commit[:12]}`" if s.commit else ""
    lines += [f"**Reproduce**{at}:", "", "```", s.command, "```", ""]
    lines += list(s.extra)
    if s.plots:
        lines += _plot_lines(s)
    text = "\n".join(lines).rstrip() + "\n"
    return (
        text
        if len(text) <= NOTE_LIMIT
        else text[: NOTE_LIMIT - 40].rsplit("\n", 1)[0] + "\n\n*(cut to MLflow's 8000 characters)*\n"
    )


def _plot_lines(s: SweepStory) -> list[str]:
    """One line per plot: its PNG and its interactive HTML, both previewed by the UI."""
    by_stem: dict[str, dict[str, str]] = {}
    for path in s.plots:
        p = PurePosixPath(path)
        if p.suffix in (".png", ".html"):
            by_stem.setdefault(p.stem, {})[p.suffix[1:]] = path
    if not by_stem:
        return []
    lines = ["**Report** (artifacts of this run, under `report/`):", ""]
    for stem, files in by_stem.items():
        links = " · ".join(
            f"[{kind.upper()}]({artifact_link(s.experiment_id, s.run_id, files[kind])})"
            for kind in ("png", "html")
            if kind in files
        )
        lines.append(f"- {stem.replace('_', ' ')}: {links}")
    return [*lines, ""]
