"""python -m benchmarks compare [--quick] [--trials N] [--slots K] [--seeds 5] [--datasets digits:0.98,photos:0.5] [--out DIR] ...
python -m benchmarks scaling [--quick] [--trials N] [--out DIR] ...
python -m benchmarks scale [--slots 16,64,128] [--trials 1000,5000] [--no-plain] [--epochs E] [--epoch-s S] [--postgres URL]
python -m benchmarks tpe-history [--histories 0,250,500] [--compare 0,250] [--trials 2000] [--seeds 5] [--quality-trials 1000]
python -m benchmarks baseline [--seeds 3] [--budgets 1,2,4] [--datasets digits,photos] [--folder PATH[:HxW[:grayscale]]] ...
python -m benchmarks infeasible [--trials 100] [--seeds 0,1,2] [--samplers tpe,random,qmc,cmaes,nsga2]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUICK = {"trials": 4, "epochs": 2, "limit": 1000, "target": 0.5}
FULL = {"trials": 12, "epochs": 5, "limit": None, "target": 0.9}


def _parser() -> argparse.ArgumentParser:
    from benchmarks.harness import DEFAULT_OUT, TOOLS

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, trials_help: str) -> None:
        p.add_argument("--quick", action="store_true", help=f"a smoke-sized budget (defaults {QUICK}); well under 5 minutes")
        p.add_argument("--trials", type=int, help=trials_help)
        p.add_argument("--epochs", type=int, help=f"max epochs per trial (default {FULL['epochs']})")
        p.add_argument("--limit", type=int, help="keep only the first N digits images (default: all 1,797)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where results go (default {DEFAULT_OUT})")
        p.add_argument(
            "--no-probe", action="store_true", help="run the product without the timing probe (fit time from MLflow epoch_time_s)"
        )
        p.add_argument("--keep", action="store_true", help="keep the tools' working folders (outputs, logs)")
        p.add_argument(
            "--ray-nice",
            action="store_true",
            help="keep Ray's default worker niceness 15 (default: 0, the same priority as the other tools' processes)",
        )

    c = sub.add_parser("compare", help="this product against KerasTuner, plain Ray Tune, Optuna alone")
    c.add_argument(
        "--datasets",
        help="comma-separated NAME[:TARGET] of digits (the embedded digits) and photos (a folder of JPEG crops of "
        "scikit-learn's two photos, 8 regions as classes, 16x16 RGB); each writes compare-NAME.* and all of them "
        "compare.txt (default: digits alone, written as compare.*)",
    )
    common(c, f"trials per tool (default {FULL['trials']})")
    c.add_argument("--slots", type=int, default=2, help="trials at once, K (default 2)")
    c.add_argument(
        "--target", type=float, help=f"val_accuracy for time-to-target (default {FULL['target']}, --quick {QUICK['target']})"
    )
    c.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    c.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="with --datasets: rounds (one dataset, one seed) at once (wall-time figures disturbed; epochs to target unchanged)",
    )
    c.add_argument(
        "--seeds", type=int, default=1, help="rounds of all tools, seeds --seed, --seed+1, ...; the table shows medians"
    )

    s = sub.add_parser("scaling", help="this product's same sweep on 1 slot and on 2")
    common(s, "trials (default 24)")

    sc = sub.add_parser("scale", help="the product's driver at K slots (simulated trials) against plain Ray Tune")
    sc.add_argument("--slots", default="16,64,128", help="Ray's logical CPUs K, comma-separated (default 16,64,128)")
    sc.add_argument(
        "--trials", default="1000", help="trial counts, comma-separated (default 1000); 1000,5000 gives the driver's RSS growth"
    )
    sc.add_argument("--no-plain", action="store_true", help="the product alone, without plain Ray Tune beside it")
    sc.add_argument("--epochs", type=int, default=4, help="max epochs per trial (default 4)")
    sc.add_argument("--epoch-s", type=float, default=1.0, help="seconds one simulated epoch sleeps (default 1)")
    sc.add_argument("--postgres", help="also run the product with its Optuna study on this PostgreSQL URL, beside sqlite")
    sc.add_argument("--out", type=Path, default=DEFAULT_OUT)
    sa = sub.add_parser("scale-ask", help="Optuna's ask latency as the study grows (the product's TPE and storage, no Ray)")
    sa.add_argument("--trials", type=int, default=1000)
    sa.add_argument("--out", type=Path, default=DEFAULT_OUT)
    th = sub.add_parser("tpe-history", help="the product's TPE with a bounded history against Optuna's reading every trial")
    th.add_argument("--histories", default="0,250,500", help="sampler.history values, 0 = unbounded (default 0,250,500)")
    th.add_argument("--compare", default="0,250", help="histories whose search quality is compared (default 0,250)")
    th.add_argument("--trials", type=int, default=2000, help="trials of the ask-cost study (default 2000)")
    th.add_argument("--seeds", type=int, default=5, help="seeds per quality study (default 5)")
    th.add_argument("--quality-trials", type=int, default=1000, help="trials per quality study (default 1000)")
    th.add_argument("--out", type=Path, default=DEFAULT_OUT)
    bl = sub.add_parser(
        "baseline", help="the product's champion against the article's CNN on held-out test splits (benchmarks/baseline.py)"
    )
    bl.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    bl.add_argument("--budgets", default="1,2,4", help="multiples of the product's default n_trials (default 1,2,4)")
    bl.add_argument("--trials", type=int, help="the default budget's trials (default: conf/config.yaml n_trials)")
    bl.add_argument("--epochs", type=int, help="max_epochs of the product and the CNN's epochs (default: conf/config.yaml)")
    bl.add_argument("--slots", type=int, default=2, help="the product's trials at once (default 2)")
    bl.add_argument("--datasets", help="comma-separated subset of digits, photos (default both)")
    bl.add_argument(
        "--folder",
        action="append",
        help="a class folder with train/ and test/: PATH[:HxW[:grayscale]] (default 64x64 rgb); repeatable",
    )
    bl.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where results go (default {DEFAULT_OUT})")
    bl.add_argument("--keep", action="store_true", help="keep the tools' working folders")
    inf = sub.add_parser("infeasible", help="the share of infeasible proposals of space=conv2d before and after redrawing them")
    inf.add_argument("--trials", type=int, default=100, help="trials of each sweep (default 100)")
    inf.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    inf.add_argument(
        "--samplers",
        default="tpe,random,qmc,cmaes,nsga2",
        help="comma-separated samplers (default: all but grid, bruteforce, gp)",
    )
    inf.add_argument("--out", type=Path, default=DEFAULT_OUT)
    pl = sub.add_parser("scale-plain", help=argparse.SUPPRESS)  # internal: plain Ray Tune in its own process
    pl.add_argument("spec", type=Path)

    rt = sub.add_parser("retarget", help="a finished comparison's to-target figures at another target, from its records")
    rt.add_argument("summary", type=Path, help="its summary, e.g. benchmarks/results/compare-photos.txt")
    rt.add_argument("target", type=float)
    p = sub.add_parser("peer", help=argparse.SUPPRESS)  # internal: one peer inside its own process
    p.add_argument("tool")
    p.add_argument("spec", type=Path)
    p.add_argument("result", type=Path)
    return parser


def _datasets(spec: str, default_target: float) -> list[tuple[str, float]]:
    from benchmarks.harness import DATASETS

    out = []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        name, _, target = item.partition(":")
        if name not in DATASETS:
            raise SystemExit(f"--datasets: unknown dataset {name!r}; use {', '.join(DATASETS)} (NAME or NAME:TARGET)")
        out.append((name, float(target) if target else DATASETS[name].get("target", default_target)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "peer":
        from benchmarks.peers import peer_main

        peer_main(args.tool, args.spec, args.result)
        return 0
    if args.command == "retarget":
        from benchmarks.report import retarget

        print(retarget(args.summary, args.target).read_text())
        return 0
    if args.command == "baseline":
        from benchmarks import baseline

        return baseline.main(args)
    if args.command == "infeasible":
        from benchmarks import infeasible

        infeasible.run(args.samplers.split(","), [int(x) for x in args.seeds.split(",")], args.trials, args.out)
        return 0
    if args.command == "tpe-history":
        from benchmarks import tpe_history

        histories = tuple(int(h) for h in args.histories.split(","))
        compared = tuple(int(h) for h in args.compare.split(","))
        tpe_history.run(histories, compared, args.trials, args.seeds, args.quality_trials, args.out)
        return 0
    if args.command in ("scale", "scale-plain", "scale-ask"):
        from benchmarks import scale

        if args.command == "scale-ask":
            scale.ask_latency(args.trials, args.out)
        elif args.command == "scale-plain":
            scale.plain_main(args.spec)
        else:
            slots = [int(k) for k in args.slots.split(",")]
            counts = [int(n) for n in args.trials.split(",")]
            storages = [None, *([args.postgres] if args.postgres else [])]
            scale.scale(slots, counts, args.epochs, args.epoch_s, args.out, storages, plain=not args.no_plain)
        return 0

    from benchmarks.common import Budget
    from benchmarks.harness import compare, scaling

    preset = QUICK if args.quick else FULL
    epochs = args.epochs or preset["epochs"]
    limit = args.limit if args.limit is not None else preset["limit"]
    if args.command == "compare":
        budget = Budget.with_product_scheduler(
            n_trials=args.trials or preset["trials"], max_epochs=epochs, slots=args.slots, limit=limit, seed=args.seed
        )
        tools = [t.strip() for t in args.tools.split(",") if t.strip()]
        target = args.target if args.target is not None else preset["target"]
        if not args.datasets:
            compare(budget, args.out, target, tools, args.seeds, probe=not args.no_probe, keep=args.keep, ray_nice=args.ray_nice)
        else:
            from benchmarks.harness import compare_datasets

            picked = _datasets(args.datasets, target)
            compare_datasets(budget, picked, args.out, tools, args.seeds, not args.no_probe, args.ray_nice, jobs=args.jobs)
    else:
        trials = args.trials or (6 if args.quick else 24)
        budget = Budget.with_product_scheduler(n_trials=trials, max_epochs=epochs, slots=1, limit=limit, seed=args.seed)
        scaling(budget, args.out, probe=not args.no_probe, keep=args.keep, ray_nice=args.ray_nice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
