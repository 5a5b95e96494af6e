"""The comparison's outputs: a pandas table, CSV files, a PNG, and headline ratios against this product."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.common import COLUMNS, ToolRun, best_so_far, metrics
from benchmarks.peers import ARTICLE
from benchmarks.product import LABEL as PRODUCT

# The product's targets, checked after every comparison.
OVERHEAD_TARGET_S = 0.5
UTILISATION_TARGET = 0.90
TRACKING_TARGET = 0.02  # MLflow writes, as a share of trial time


def table(runs: list[ToolRun], target: float) -> pd.DataFrame:
    """One row per run (a `repeat` column when a tool ran more than once)."""
    rows = []
    seen: dict[str, int] = {}
    for run in runs:
        row = metrics(run, target)
        row["repeat"] = seen.get(run.tool, 0)
        seen[run.tool] = row["repeat"] + 1
        rows.append(row)
    return pd.DataFrame(rows, columns=[*COLUMNS, "repeat"])


TO_TARGET = ("time_to_target_s", "epochs_to_target", "slot_s_to_target")


def censored_median(values: Sequence[float]) -> float:
    """The median of to-target figures where a run that never reached the target counts as longer
    than every run that did (NaN -> infinity), so misses are not dropped from the median. inf: the
    median run did not reach it."""
    ordered = sorted(math.inf if v is None or pd.isna(v) else float(v) for v in values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summary(raw: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per tool (the raw table itself when each tool ran once), in run order; the
    to-target columns as censored medians (inf: the median seed did not reach the target)."""
    if raw.empty or raw["repeat"].max() == 0:
        return raw.drop(columns="repeat").reset_index(drop=True)
    order = list(dict.fromkeys(raw["tool"]))
    numeric = [c for c in COLUMNS if c not in ("tool", "early_stopping", *TO_TARGET)]
    grouped = raw.groupby("tool", sort=False)
    out = grouped[numeric].median()
    for column in TO_TARGET:
        out[column] = grouped[column].agg(censored_median)
    out["early_stopping"] = grouped["early_stopping"].first()
    out["slots"] = out["slots"].astype(int)  # fixed per tool: a median of it is the same count
    out = out.reindex(order).reset_index()
    return out[COLUMNS]


def format_table(df: pd.DataFrame) -> str:
    shown = df.copy()
    shown["utilisation"] = shown["utilisation"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    for column in TO_TARGET:
        shown[column] = shown[column].map(lambda v: "not reached" if pd.isna(v) or v == math.inf else f"{v:g}")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        return shown.to_string(index=False)


def _ratio(a: float, b: float) -> float:
    if a is None or b is None or pd.isna(a) or pd.isna(b) or b == 0:
        return math.nan
    return a / b


def headline(df: pd.DataFrame, target: float) -> list[str]:
    """Each peer against this product: how many times its wall time, time to target and
    per-trial overhead; values above 1 mean the product is faster."""
    rows = {r["tool"]: r for r in df.to_dict("records")}
    if PRODUCT not in rows:
        return []
    p = rows[PRODUCT]
    lines = [f"Ratios peer / this product (above 1: this product is better; target val_accuracy {target:g}):"]
    for tool, r in rows.items():
        if tool in (PRODUCT, ARTICLE):  # the article's CNN is a baseline: `against_baseline`
            continue
        ttt = _ratio(r["time_to_target_s"], p["time_to_target_s"])
        ttt_text = (
            f"{ttt:.2f}x"
            if not pd.isna(ttt)
            else ("peer did not reach it" if pd.isna(r["time_to_target_s"]) else "this product did not reach it")
        )
        lines.append(
            f"  {tool}: wall {_ratio(r['wall_s'], p['wall_s']):.2f}x, time to target {ttt_text}, "
            f"per-trial overhead {_ratio(r['overhead_median_s'], p['overhead_median_s']):.2f}x, "
            f"utilisation {r['utilisation']:.0%} vs {p['utilisation']:.0%}"
        )
    return lines


def against_baseline(df: pd.DataFrame) -> list[str]:
    """This product's best against the article's CNN trained once (the model a user already has)."""
    rows = {r["tool"]: r for r in df.to_dict("records")}
    if PRODUCT not in rows or ARTICLE not in rows:
        return []
    p, a = rows[PRODUCT], rows[ARTICLE]
    gain = (p["best_val_accuracy"] - a["best_val_accuracy"]) * 100
    return [
        f"Against the baseline, {ARTICLE}: best val_accuracy {p['best_val_accuracy']:.4f} vs {a['best_val_accuracy']:.4f} "
        f"({gain:+.1f} points), {p['epochs']:g} trial-epochs vs {a['epochs']:g} "
        f"({_ratio(p['epochs'], a['epochs']):.1f}x), wall {p['wall_s']:g} s vs {a['wall_s']:g} s "
        f"({_ratio(p['wall_s'], a['wall_s']):.1f}x); the test-split figures: python -m benchmarks baseline"
    ]


def targets(df: pd.DataFrame, tracking_share: float | None = None) -> list[str]:
    """The product's stated targets, each MET or MISSED with the numbers (tracking_share: from the
    timing probe, when it ran)."""
    rows = {r["tool"]: r for r in df.to_dict("records")}
    if PRODUCT not in rows:
        return []
    p = rows[PRODUCT]
    out = ["Targets for this product:"]

    def line(ok: bool | None, text: str) -> None:
        out.append(f"  [{'MET' if ok else ('n/a' if ok is None else 'MISSED')}] {text}")

    line(
        p["overhead_median_s"] < OVERHEAD_TARGET_S,
        f"per-trial overhead median {p['overhead_median_s']} s < {OVERHEAD_TARGET_S} s",
    )
    line(
        p["utilisation"] >= UTILISATION_TARGET if p["slots"] == 2 else None,
        f"utilisation {p['utilisation']:.0%} >= {UTILISATION_TARGET:.0%} on 2 slots (ran on {p['slots']})",
    )
    if tracking_share is not None:
        line(tracking_share < TRACKING_TARGET, f"MLflow writes {tracking_share:.1%} of trial time < {TRACKING_TARGET:.0%}")
    kt = rows.get("KerasTuner RandomSearch")
    ray = rows.get("Ray Tune + OptunaSearch (plain)")
    mine = p["time_to_target_s"]
    if kt is not None:
        theirs = kt["time_to_target_s"]
        ok = None if pd.isna(theirs) and pd.isna(mine) else (not pd.isna(mine) and (pd.isna(theirs) or mine <= theirs / 2))
        line(ok, f"time to target {mine} s <= half of KerasTuner RandomSearch's {theirs} s")
    if ray is not None:
        theirs = ray["time_to_target_s"]
        ok = None if pd.isna(theirs) and pd.isna(mine) else (not pd.isna(mine) and (pd.isna(theirs) or mine < theirs))
        line(ok, f"time to target {mine} s < plain Ray Tune + OptunaSearch's {theirs} s")
    return out


def plot(runs: list[ToolRun], target: float, path: Path) -> None:
    """Left: best validation accuracy so far against seconds since each tool's launch.
    Right: each tool's slot-seconds (wall x slots) split into fit, per-trial overhead, and time
    outside any trial (start-up, tail, idle slots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts: dict[str, ToolRun] = {}
    for run in runs:
        firsts.setdefault(run.tool, run)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    for tool, run in firsts.items():
        points = best_so_far(run)
        wall = run.ended - run.launched
        if points:
            xs = [x for x, _ in points] + [wall]
            ys = [y for _, y in points] + [points[-1][1]]
            left.step(xs, ys, where="post", label=tool, linewidth=2.2 if tool == PRODUCT else 1.4)
            left.plot([wall], [ys[-1]], marker="|", markersize=12, color=left.lines[-1].get_color())
    left.axhline(target, color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("seconds since the tool's process started (| = end)")
    left.set_ylabel("best validation accuracy so far")
    left.set_title("Best val accuracy vs wall time")
    left.legend(fontsize=8, loc="lower right")
    left.grid(alpha=0.3)

    names, fit, over, idle = [], [], [], []
    for tool, run in firsts.items():
        slot_s = (run.ended - run.launched) * run.slots
        in_trials = sum(max(0.0, t.end - t.start) for t in run.trials)
        f = sum(t.fit_s for t in run.trials)
        names.append(f"{tool}\n({run.slots} slot{'s' if run.slots > 1 else ''})")
        fit.append(f)
        over.append(max(0.0, in_trials - f))
        idle.append(max(0.0, slot_s - in_trials))
    y = range(len(names))
    right.barh(y, fit, label="inside fit", color="#4c72b0")
    right.barh(y, over, left=fit, label="per-trial overhead", color="#dd8452")
    right.barh(y, idle, left=[a + b for a, b in zip(fit, over)], label="outside trials", color="#c7c7c7")
    right.set_yticks(list(y), names, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("slot-seconds (wall time x slots)")
    right.set_title("Where the slots' time went")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(runs: list[ToolRun], target: float, out: Path, stem: str = "compare") -> tuple[pd.DataFrame, dict[str, Path]]:
    """Table, raw CSV, summary CSV, PNG and every run's record as JSON under out/."""
    out.mkdir(parents=True, exist_ok=True)
    raw = table(runs, target)
    df = summary(raw)
    paths = {"csv": out / f"{stem}.csv", "runs_csv": out / f"{stem}_runs.csv", "png": out / f"{stem}.png"}
    df.to_csv(paths["csv"], index=False)
    raw.assign(seed=[run.extra.get("seed") for run in runs]).to_csv(paths["runs_csv"], index=False)
    paths["to_target_csv"] = out / f"{stem}_to_target.csv"
    to_target_rows(runs, target).to_csv(paths["to_target_csv"], index=False)
    plot(runs, target, paths["png"])
    records = out / f"{stem}_records"
    records.mkdir(exist_ok=True)
    seen: dict[str, int] = {}
    for run in runs:
        n = seen[run.tool] = seen.get(run.tool, -1) + 1
        slug = "".join(c if c.isalnum() else "-" for c in run.tool.lower()).strip("-")
        (records / f"{slug}-{n}.json").write_text(run.to_json())
    return df, paths


def describe(runs: list[ToolRun]) -> list[str]:
    return [f"  {r.tool}: {r.notes}; fit time from {r.fit_source}" for r in {r.tool: r for r in runs}.values()]


def format_table_generic(df: pd.DataFrame) -> str:
    shown = df.copy()
    if "utilisation" in shown:
        shown["utilisation"] = shown["utilisation"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        return shown.to_string(index=False)


# ----------------------------------------------------------------------------------- compute to target

# The targets for compute to target (medians over seeds).
EPOCHS_TO_TARGET_SHARE = 0.5  # this product's epochs to target <= half of the best peer's
SLOT_S_RULE = "below every peer's median"


def _per_tool(runs: list[ToolRun], target: float) -> dict[str, list[dict]]:
    by_tool: dict[str, list[dict]] = {}
    for run in runs:
        by_tool.setdefault(run.tool, []).append(metrics(run, target))
    return by_tool


def _spread(values: list[float]) -> str:
    """median [min-max]; a seed that never reached the target shows as "miss" in place of the max."""
    med = censored_median(values)
    reached = [v for v in values if not pd.isna(v)]
    if not reached:
        return "not reached"
    top = "miss" if len(reached) < len(values) else f"{max(reached):g}"
    text = "not reached" if med == math.inf else f"{round(med, 1):g}"
    return f"{text} [{min(reached):g}-{top}]" if len(values) > 1 else text


def to_target_rows(runs: list[ToolRun], target: float) -> pd.DataFrame:
    """Per tool over its seeds: how many reached the target and the three to-target figures as
    censored median [min-max] (max "miss": some seed never reached it)."""
    rows = []
    for tool, rows_of in _per_tool(runs, target).items():
        rows.append(
            {
                "tool": tool,
                "seeds_reached": f"{sum(not pd.isna(r['epochs_to_target']) for r in rows_of)}/{len(rows_of)}",
                "epochs_to_target": _spread([r["epochs_to_target"] for r in rows_of]),
                "slot_s_to_target": _spread([r["slot_s_to_target"] for r in rows_of]),
                "time_to_target_s": _spread([r["time_to_target_s"] for r in rows_of]),
                "epochs_per_seed": " ".join(
                    "-" if pd.isna(r["epochs_to_target"]) else f"{r['epochs_to_target']:g}" for r in rows_of
                ),
            }
        )
    return pd.DataFrame(rows)


def to_target_table(runs: list[ToolRun], target: float) -> list[str]:
    df = to_target_rows(runs, target)
    if df.empty:
        return []
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
        body = df.to_string(index=False)
    return [
        f"To val_accuracy {target:g}, median [min-max] over seeds (miss: a seed that never reached it; it counts as "
        "longer than every seed that did). epochs: all trials' epochs until the first at the target (the machine's "
        "speed and load cannot change it); slot_s: the seconds trials held their slots until then; time: from launch:",
        body,
    ]


def compute_targets(runs: list[ToolRun], target: float) -> list[str]:
    """The issue's compute-to-target targets, MET or MISSED with by how much."""
    by_tool = _per_tool(runs, target)
    if PRODUCT not in by_tool or len(by_tool) < 2:
        return []
    med = {
        tool: {k: censored_median([r[k] for r in rows]) for k in ("epochs_to_target", "slot_s_to_target")}
        for tool, rows in by_tool.items()
    }
    mine, peers = med.pop(PRODUCT), {t: v for t, v in med.items() if t != ARTICLE}  # a baseline is no search peer
    if not peers:
        return []
    n = len(by_tool[PRODUCT])
    out = [f"Compute-to-target targets for this product (medians over {n} seed{'s' if n > 1 else ''}):"]

    def fmt(v: float) -> str:
        return "not reached" if v == math.inf or pd.isna(v) else f"{round(v, 1):g}"

    best_tool = min(peers, key=lambda t: peers[t]["epochs_to_target"])
    best = peers[best_tool]["epochs_to_target"]
    limit = best * EPOCHS_TO_TARGET_SHARE
    e = mine["epochs_to_target"]
    if e == math.inf:
        verdict = "MISSED", "this product's median seed did not reach the target"
    elif e <= limit:
        verdict = "MET", f"{e / best:.2f}x the best peer's" if best not in (0, math.inf) else "no peer's median seed reached it"
    else:
        verdict = "MISSED", f"by {e - limit:g} epochs ({e / best:.2f}x the best peer's, the target is 0.5x)"
    out.append(
        f"  [{verdict[0]}] epochs to target {fmt(e)} <= half of the best peer's median ({best_tool} {fmt(best)} -> "
        f"<= {fmt(limit)}): {verdict[1]}"
    )
    s = mine["slot_s_to_target"]
    worse = [(t, v["slot_s_to_target"]) for t, v in peers.items() if not s < v["slot_s_to_target"]]
    listing = ", ".join(
        f"{t} {fmt(v['slot_s_to_target'])}"
        + ("" if v["slot_s_to_target"] in (0, math.inf) or s == math.inf else f" ({s / v['slot_s_to_target']:.2f}x)")
        for t, v in peers.items()
    )
    if not worse:
        out.append(f"  [MET] slot-seconds to target {fmt(s)} < every peer's median: {listing}")
    else:
        by = "; ".join(
            f"{t} {fmt(v)}" + ("" if s == math.inf or v == math.inf else f": {s - v:.1f} slot-s more ({s / v:.2f}x)")
            for t, v in worse
        )
        out.append(f"  [MISSED] slot-seconds to target {fmt(s)} < every peer's median: not below {by} (all: {listing})")
    return out


def retarget(summary: Path, target: float) -> Path:
    """The to-target figures of a finished comparison at another target, from its stored records
    (`STEM_records/*.json`, the runs themselves): writes STEM_at_TARGET.txt beside `summary`, headed
    by the comparison's own date, commit, machine and load lines."""
    stem = summary.name.removesuffix(".txt")
    runs = [ToolRun.from_dict(json.loads(p.read_text())) for p in sorted((summary.parent / f"{stem}_records").glob("*.json"))]
    order = list(dict.fromkeys(r.tool for r in sorted(runs, key=lambda r: (r.extra.get("seed", 0), r.launched))))
    runs.sort(key=lambda r: (r.extra.get("seed", 0), order.index(r.tool)))
    header = summary.read_text().split("\n\n", 1)[0]
    lines = [
        f"{stem} at target val_accuracy {target:g}: the same runs as {summary.name} (its header below), re-read from "
        f"{stem}_records/ by python -m benchmarks retarget {summary.name} {target:g}",
        "",
        header,
        "",
        *to_target_table(runs, target),
        "",
        *compute_targets(runs, target),
    ]
    out = summary.parent / f"{stem}_at_{target:g}.txt"
    out.write_text("\n".join(lines) + "\n")
    return out
