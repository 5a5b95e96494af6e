"""`python -m sweeps <command>`: parse arguments, call the library, print what it returns.

The one place errors become exit codes (`sweeps.core.errors`): a `SweepsError` is caught here once and
printed as one line. 0 done; 1 the sweep ran but no trial completed, or failures stopped it, or its
best model was not registered as asked (the summary first, then that one line);
2 bad input (one line naming the field and the fix; nothing written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sweeps.config.saved import RESUMABLE
from sweeps.config.settings import SweepConfig
from sweeps.config.validation import load_config
from sweeps.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError, InputError, SweepsError, message
from sweeps.core.redaction import RedactingStream


def _options() -> str:
    """The registered options (sweeps.registry), for --help."""
    from sweeps import registry

    return (
        f"samplers (sampler=): {registry.names(registry.SAMPLERS)}; "
        f"schedulers (scheduler=): {registry.names(registry.SCHEDULERS)}; "
        f"datasets (dataset=): {registry.names(registry.DATASETS)}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps", description="Hyperparameter sweeps for Keras Conv2D classifiers.", epilog=_options()
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a sweep: python -m sweeps run [key=value ...]", epilog=_options())
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. n_trials=20 sampler=random space=conv2d")
    run.add_argument("--cfg", action="store_true", help="print the resolved config and exit")
    resume = sub.add_parser("resume", help="continue a sweep that was stopped or killed: python -m sweeps resume NAME")
    resume.add_argument("name")
    resume.add_argument(
        "overrides",
        nargs="*",
        help=f"output_dir=... to find it; may change {', '.join(RESUMABLE)}",
    )
    report = sub.add_parser("report", help="tables and plots of a sweep: python -m sweeps report NAME")
    report.add_argument("name")
    report.add_argument("overrides", nargs="*", help="the sweep's output_dir=... / tracking.uri=... if not the defaults")
    submit = sub.add_parser(
        "submit", help="submit a sweep to a running Ray cluster (Jobs API): python -m sweeps submit [key=value ...]"
    )
    submit.add_argument("overrides", nargs="*", help="the sweep's overrides; paths refer to the cluster's head node")
    submit.add_argument("--address", help="the cluster's dashboard address, e.g. http://127.0.0.1:8265 (default: RAY_ADDRESS)")
    submit.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    server = sub.add_parser("server", help="start an MLflow tracking server that several machines can share")
    server.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines (behind a firewall)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--backend-store-uri", help="database URL (default: sqlite in <output_dir>/server)")
    server.add_argument(
        "--auth",
        action="store_true",
        help="MLflow's basic-auth app (needs MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY)",
    )
    server.add_argument("overrides", nargs="*", help="output_dir=...")
    predict = sub.add_parser(
        "predict",
        help="classify images with a logged or registered model: python -m sweeps predict --model models:/NAME@champion --input images.npz",
    )
    predict.add_argument(
        "--model", required=True, help="models:/NAME@champion, models:/m-<id> (tag sweeps.best_model_uri), runs:/<run id>/model"
    )
    predict.add_argument(
        "--input",
        required=True,
        type=Path,
        help=".npz with x (or x_test, x_train): (N,H,W) or (N,H,W,C); or an image file or folder of images",
    )
    predict.add_argument("overrides", nargs="*", help="output_dir=... / tracking.uri=... if not the defaults")
    datasets = sub.add_parser(
        "datasets",
        help="the dataset versions (content digests) the sweeps used; "
        "datasets diff A B: what changed between two image-folder versions (sweep names or digests)",
    )
    datasets.add_argument("overrides", nargs="*", help="[diff A B] output_dir=... / tracking.uri=... / tracking.experiment=...")
    ui = sub.add_parser("ui", help="open the MLflow UI on the configured tracking store")
    ui.add_argument("overrides", nargs="*", help="the same overrides as the sweep (output_dir=..., tracking.uri=...)")
    ui.add_argument("--port", type=int, default=5000)
    dashboard = sub.add_parser(
        "dashboard", help="optuna-dashboard on a sweep's study (pip install -e '.[dashboard]'): python -m sweeps dashboard NAME"
    )
    dashboard.add_argument("name")
    dashboard.add_argument(
        "overrides", nargs="*", help="the sweep's output_dir=... / tracking.study_storage=... if not the defaults"
    )
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ start-up lines (CUDA probing, oneDNN notes) say nothing a user can act on.
    chosen = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The terminal is written like every other record: through the one redaction step, so a
    # password in a URL (tracking.uri, a study database) never shows, in an error either.
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout, sys.stderr = RedactingStream(sys.stdout, "stdout"), RedactingStream(sys.stderr, "stderr")
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, chosen)
    except SweepsError as exc:
        print(message(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # The sweep's run is already ended KILLED and its running trials left to `resume`.
        print("interrupted: the sweep's MLflow run is ended KILLED; python -m sweeps resume NAME continues it", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if "sweeps.storage.storages" in sys.modules:  # the command owns the study storages it opened
            sys.modules["sweeps.storage.storages"].close_storages()
        if "models.native_log" in sys.modules:  # a background Keras import holding fd 2 has our last lines
            sys.modules["models.native_log"].wait_for_filtered_imports()


def _dispatch(args: argparse.Namespace, tf_level_chosen: bool = False) -> int:
    if args.command == "submit":
        from sweeps.commands.submit import submit

        # Not composed here: output_dir and dataset paths name the head node's files, not this machine's.
        return submit(list(args.overrides), args.address, args.follow)
    if args.command == "resume":
        from sweeps.driver import sweep

        located = [o for o in args.overrides if o.startswith("output_dir=")]
        output_dir = load_config(located).output_dir
        rest = [o for o in args.overrides if not o.startswith("output_dir=")]
        return _finish(sweep.resume(args.name, output_dir, rest))
    if args.command == "datasets" and args.overrides[:1] == ["diff"]:
        refs = [o for o in args.overrides[1:] if "=" not in o]
        if len(refs) != 2:
            raise ConfigError(
                "datasets diff",
                f"{len(refs)} versions given",
                "name two: python -m sweeps datasets diff <sweep or digest> <sweep or digest>",
            )
        from sweeps.data import versions as datasets_cmd

        where = load_config([o for o in args.overrides[1:] if "=" in o])
        print(datasets_cmd.compare(where.output_dir, *refs, where.tracking_uri, where.tracking.experiment).text())
        return EXIT_OK
    cfg = load_config(list(args.overrides))
    if not cfg.verbose:
        # MLflow's INFO lines (creating tables, ...) are not the product's own; verbose=true shows them.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    elif not tf_level_chosen:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # verbose: TensorFlow's own lines too
    if args.command == "server":
        from sweeps.commands import server

        return server.main(cfg.output_dir / "server", args.host, args.port, args.backend_store_uri, args.auth)
    if args.command == "predict":
        return _predict(args.model, args.input, cfg.tracking_uri)
    if args.command == "datasets":
        return _datasets(cfg.tracking_uri, cfg.tracking.experiment)
    if args.command == "ui":
        return _ui(cfg, args.port)
    if args.command == "dashboard":
        from sweeps.commands import dashboard

        return dashboard.main(args.name, cfg.output_dir, cfg.tracking.study_storage, args.host, args.port)
    if args.command == "report":
        return _report(args.name, cfg)
    if args.cfg:
        print(cfg.to_yaml())
        return EXIT_OK
    from sweeps.driver import sweep

    return _finish(sweep.start(cfg))


def _finish(summary) -> int:
    print(summary.text())
    if summary.not_registered:  # asked for, not done: after the summary of the sweep that finished, one line
        sys.stdout.flush()
        print(message(SweepsError(summary.not_registered)), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if summary.best_number is not None and not summary.stopped_because else EXIT_FAILED


def _report(name: str, cfg: SweepConfig) -> int:
    """`report NAME`: the trials table best first, where the files are, where they were logged."""
    from sweeps.commands.report import format_table, make_report

    uri = cfg.tracking_uri
    report = make_report(name, cfg.output_dir, uri, cfg.tracking.experiment, cfg.tracking.study_storage)
    print(f"Sweep {name}: {len(report.frame)} trials, best first by {cfg.metric} ({cfg.mode})")
    print(format_table(report.frame, cfg.metric, cfg.mode))
    for line in report.against_baseline:
        print(line)
    print(f"Report: {len(report.files)} files in {report.directory}")
    if report.parent_run_id:
        print(f"Logged to MLflow run {report.parent_run_id} under report/")
    else:
        print(f"No MLflow parent run of {name!r} in experiment {cfg.tracking.experiment!r} at {uri}: files not logged")
    return EXIT_OK


def _predict(model_uri: str, input_path: Path, tracking_uri: str) -> int:
    """`predict`: one line per image, `item<TAB>class<TAB>probability`."""
    from sweeps.commands.predict import classify

    found = classify(model_uri, input_path, tracking_uri)
    for note in found.notes:
        print(f"warning: {note}", file=sys.stderr)
    for item, label, probability in found.rows:
        print(f"{item}\t{label}\t{probability:.6f}")
    sys.stdout.flush()
    return EXIT_OK


def _datasets(tracking_uri: str, experiment: str) -> int:
    """`datasets`: the dataset versions the runs of the experiment used, one row each."""
    from sweeps.data.versions import table, versions_used

    rows = versions_used(tracking_uri, experiment)
    if not rows:
        print(
            f"No datasets recorded in experiment {experiment!r} of {tracking_uri} (run a sweep, or set tracking.experiment=...)"
        )
        return EXIT_OK
    print(f"Datasets used by the runs of experiment {experiment!r} ({tracking_uri}):")
    print(table(rows))
    return EXIT_OK


def _ui(cfg: SweepConfig, port: int) -> int:
    from sweeps.registry import tracking_backend

    uri = cfg.tracking_uri
    if tracking_backend(uri).serves_ui:
        print(f"The tracking server already serves the UI: {uri}")
        return EXIT_OK
    database = sqlite_file(uri)
    if database is not None and not database.is_file():
        field = "tracking.uri" if cfg.tracking.uri else "output_dir"
        raise InputError(
            field,
            f"no MLflow store at {database}",
            "run a sweep first, or set output_dir=<the sweep's folder> or tracking.uri=sqlite:///<its mlflow.db>",
        )
    from tracking import experiment_id
    from tracking.note import experiment_link, view_key
    from tracking.query import latest_sweep

    # One worker serves one user (uvicorn's default starts several, each a full MLflow import).
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    found = experiment_id(uri, cfg.tracking.experiment)
    latest = latest_sweep(uri, cfg.tracking.experiment) if found else None
    # The latest sweep's trials, as its saved view shows them (objective, trial, outcome, params).
    page = f"/{experiment_link(found, '/runs' if latest else '', view_key(latest) if latest else None)}" if found else ""
    print(f"MLflow UI on http://127.0.0.1:{port}{page}  ({' '.join(command)})", flush=True)
    # MLflow's job runners (GenAI judges and scorers: six more processes) have nothing to do for a sweep.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    return subprocess.call(command, env=env)


def sqlite_file(uri: str) -> Path | None:
    """The database file a `sqlite:///...` tracking URI names (None for any other store)."""
    if not uri.startswith("sqlite://"):
        return None
    path = uri.removeprefix("sqlite://").split("?", 1)[0][1:]  # sqlite:///rel.db, sqlite:////abs.db
    return Path(path).expanduser().resolve() if path and path != ":memory:" else None
