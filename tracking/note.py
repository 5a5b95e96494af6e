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
