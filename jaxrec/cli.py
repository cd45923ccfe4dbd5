"""The ``jaxrec`` command line.

  jaxrec train --config configs/ml100k-mf.yaml [--set train.epochs=50 ...] [--resume]
  jaxrec train --distributed --coordinator HOST:PORT --num-processes N --process-id I ...
  jaxrec sweep --config configs/ml100k-mf.yaml --grid train.seed=0,1,2,3 --grid train.lr=0.001,0.005
  jaxrec gan --config configs/ml100k-gan.yaml
  jaxrec robustness --config configs/ml100k-robustness.yaml
  jaxrec attack --config configs/ml100k-attack.yaml
  jaxrec recommend runs/quickstart --users 5,17 --k 10 [--format table|csv|json|parquet] [--out FILE]
  jaxrec export runs/quickstart --embeddings emb.npz
  jaxrec data info ml-100k
  jaxrec --import mymodels train --set model.name=mine   # a module that calls jaxrec.register_model

Every study (:data:`jaxrec.experiment.studies.STUDIES`) is one subcommand, dispatched the same
way by :func:`cmd_study`. User mistakes (bad files, config keys, names) print one ``error:`` line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from jaxrec.errors import JaxrecError, caller

DESCRIPTION = "jaxrec: train, attack and harden recommenders in JAX (run 'jaxrec <command> --help')."


def _add_config_args(p: argparse.ArgumentParser, resumable: bool = False, defaults: str = "MF on ml-100k") -> None:
    p.add_argument("--config", "-c", help=f"YAML config (default: the built-in defaults, {defaults})")
    p.add_argument(
        "--set",
        "-s",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=50 (repeatable)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run of the same name (refused otherwise)",
    )
    if resumable:
        p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint (checkpoint.dir)")


def cmd_train(args) -> int:
    from rich.console import Console

    if args.distributed:  # before anything touches a device
        from jaxrec.train.parallel import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    elif any(v is not None for v in (args.coordinator, args.num_processes, args.process_id)):
        raise JaxrecError("--coordinator/--num-processes/--process-id need --distributed")

    from jaxrec.config import load_config
    from jaxrec.experiment import run
    from jaxrec.experiment.report import metrics_table, rich_table

    cfg = load_config(args.config, args.overrides)
    console = Console()
    console.print(f"[bold]{cfg.name}[/]: {cfg.model.name} on {cfg.data.dataset}, {cfg.train.epochs} epochs")
    result = run(cfg, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    t = result.timing
    console.print(
        rich_table(
            metrics_table(result.metrics, f"{cfg.name}: test ({cfg.eval.protocol}, best epoch {result.fit.best_epoch})")
        )
    )
    console.print(
        f"users {result.split.n_users}, items {result.split.n_items}, "
        f"train {len(result.split.train)}, test {len(result.split.test)} | "
        f"epoch {t['train_s_per_epoch_median']:.3f} s (median), compile {t['compile_s']:.2f} s, "
        f"eval {t['eval_s']:.3f} s"
    )
    if result.run_dir is not None:
        console.print(f"wrote {result.run_dir}/metrics.json")
    return 0


def cmd_study(args) -> int:
    """Any study: check the config (every value, victim file and the data) before any training,
    run it, print its tables, say where its report is."""
    from pathlib import Path

    from rich.console import Console

    from jaxrec.config import load_config, resolve_config
    from jaxrec.experiment.report import rich_table
    from jaxrec.experiment.studies import STUDIES, execute

    study = STUDIES[args.command]
    path = resolve_config(args.config) if args.config else None  # a file, or a shipped config's name
    cfg = load_config(path, args.overrides)
    base_dir = path.parent if path is not None else Path(".")  # its references resolve next to it
    inputs = study.inputs(args) if hasattr(study, "inputs") else {}
    plan = study.check(cfg, base_dir, **inputs)
    console = Console()
    console.print(f"[bold]{cfg.name}[/]: {study.describe(cfg, plan)}")
    resume = getattr(args, "resume", False)
    result = execute(
        study, cfg, plan, progress=not args.quiet, resume=resume, overwrite=args.overwrite, console=console
    )
    for table in study.tables(result):
        console.print(rich_table(table))
    footer = (
        study.footer(result)
        if hasattr(study, "footer")
        else f"{len(result.rows)} rows in {result.timing['wall_s']:.1f} s"
    )
    console.print(footer)
    if result.run_dir is not None:
        console.print(f"wrote {result.run_dir}/report.md")
    return 0


def cmd_data_info(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from jaxrec.data import describe, load_dataset

    kwargs = {"data_dir": args.data_dir} if args.data_dir else {}
    table_options = {
        "user_col": args.user_col,
        "item_col": args.item_col,
        "rating_col": args.rating_col,
        "time_col": args.time_col,
        "delimiter": args.delimiter,
        "columns": tuple(args.columns.split(",")) if args.columns else None,
    }
    kwargs.update({k: v for k, v in table_options.items() if v is not None})
    info = describe(load_dataset(args.name, **kwargs))
    table = Table(title=args.name, show_header=False)
    for k, v in info.items():
        table.add_row(str(k), f"{v:.6f}" if isinstance(v, float) else str(v))
    Console().print(table)
    return 0


def cmd_data_synth(args) -> int:
    import time

    from jaxrec.data import describe
    from jaxrec.data.synthetic import SPEC_DEFAULTS, from_spec
    from jaxrec.data.tables import write_table

    spec = "synthetic:" + ",".join(f"{k}={getattr(args, k)}" for k in SPEC_DEFAULTS)
    t0 = time.perf_counter()
    inter = from_spec(spec)
    path = write_table(inter, args.out)
    info = describe(inter)
    print(
        f"wrote {path}: {info['users']} users, {info['items']} items, {len(inter)} pairs "
        f"(density {info['density']:.2e}) in {time.perf_counter() - t0:.1f} s; the same data: --set data.dataset={spec}"
    )
    return 0


def _users(text: str | None) -> list[str] | None:
    return None if text is None else [u.strip() for u in text.split(",") if u.strip()]


def cmd_recommend(args) -> int:
    """Top-K lists for raw users of a saved run, streamed in chunks (all users by default)."""
    import time

    from jaxrec.experiment.exports import check_out, recommendation_format, write_recommendations
    from jaxrec.experiment.trained import load_run

    fmt = recommendation_format(args.format, args.out)
    check_out(args.out)
    t0 = time.perf_counter()
    model = load_run(args.run)
    users = _users(args.users)
    if users is not None:
        model._lookup("user", users)  # an unknown user fails before anything is written
    chunks = model.recommend_chunks(users, args.k, args.exclude)
    n = write_recommendations(chunks, fmt, args.out)
    where = args.out or "stdout"
    print(
        f"{n} users' top-{args.k} ({args.exclude} items excluded) to {where} in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0


def cmd_export(args) -> int:
    """A saved run's user and item embeddings to .npz or .parquet."""
    from jaxrec.experiment.exports import write_embeddings
    from jaxrec.experiment.trained import load_run

    model = load_run(args.run)
    if not getattr(model.model, "dot_product", False):
        print(
            f"warning: {model.config.model.name} does not score by a dot product: the exported embeddings are its "
            "tables side by side (dot_product=False in the file)",
            file=sys.stderr,
        )
    path = write_embeddings(model, args.embeddings)
    print(f"wrote {path}: {model.split.n_users} users, {model.split.n_items} items", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from jaxrec.experiment.studies import STUDIES
    from jaxrec.version import __version__

    parser = argparse.ArgumentParser(prog="jaxrec", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"jaxrec {__version__}")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (from the current directory or the environment) before the command, e.g. one "
        "that calls jaxrec.register_model; repeatable",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a recommender and report test metrics")
    _add_config_args(p, resumable=True)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize (flags below, else JAXREC_COORDINATOR, "
        "JAXREC_NUM_PROCESSES, JAXREC_PROCESS_ID, else cluster auto-detection)",
    )
    p.add_argument("--coordinator", help="host:port of process 0 (with --distributed)")
    p.add_argument("--num-processes", type=int, help="number of processes (with --distributed)")
    p.add_argument("--process-id", type=int, help="this process's index (with --distributed)")
    p.set_defaults(func=cmd_train)
    for name, study in STUDIES.items():  # every study the same way
        p = sub.add_parser(name, help=study.HELP)
        _add_config_args(p, getattr(study, "RESUMABLE", False), getattr(study, "DEFAULTS", "MF on ml-100k"))
        if hasattr(study, "arguments"):
            study.arguments(p)
        p.set_defaults(func=cmd_study)
    p = sub.add_parser("recommend", help="top-K items for raw users of a trained run")
    p.add_argument("run", help="a `jaxrec train` run directory (runs/<name>)")
    p.add_argument("--users", metavar="U1,U2,..", help="raw user ids (default: every user, in chunks)")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument(
        "--exclude",
        choices=("seen", "train", "none"),
        default="seen",
        help="leave out the user's items of every part of the run's data (seen, default), of training only, or none",
    )
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), help="default: from --out, else table")
    p.add_argument("--out", help="write to this file (default: stdout; messages go to stderr)")
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("export", help="a trained run's user and item embeddings")
    p.add_argument("run", help="a `jaxrec train` run directory (runs/<name>)")
    p.add_argument("--embeddings", required=True, metavar="FILE", help="FILE.npz or FILE.parquet")
    p.set_defaults(func=cmd_export)
    data = sub.add_parser("data", help="data set utilities")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("info", help="users, items, interactions, density of a data set")
    p.add_argument("name", help="a data set name (ml-100k, gowalla, ...) or a path")
    p.add_argument("--data-dir", help="look here before $JAXREC_DATA_DIR and the cache")
    p.add_argument(
        "--columns",
        metavar="A,B,..",
        help="a header-less file's column names in order "
        "(e.g. user_id,item_id,rating,timestamp for MovieLens' u1.base), as data.columns",
    )
    for role in ("user", "item", "rating", "time"):
        p.add_argument(f"--{role}-col", help=f"the {role} column's name (as data.{role}_col)")
    p.add_argument("--delimiter", help="the field separator (default: from the file extension), as data.delimiter")
    p.set_defaults(func=cmd_data_info)
    p = dsub.add_parser("synth", help="generate power-law interactions with a planted structure, seeded")
    p.add_argument("out", help="the file to write: .csv, .tsv or .parquet (columns user_id, item_id)")
    from jaxrec.data.synthetic import SPEC_DEFAULTS

    for key, default in SPEC_DEFAULTS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=type(default), default=default, help=f"default {default}")
    p.set_defaults(func=cmd_data_synth)
    return parser


def _import_modules(names: list[str]) -> None:
    """``--import MODULE``: import each module (the current directory first on the path, as
    ``python -m`` does), so that the models it registers are ``model.name`` values."""
    import importlib
    import os

    if names and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise JaxrecError(f"--import {name}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from jaxrec.experiment import output

    output.INVOCATION = ["jaxrec", *(sys.argv[1:] if argv is None else argv)]  # recorded in run.json
    if args.command != "data":
        from jaxrec.compile_cache import enable

        enable()  # compiled programs persist across runs ($JAXREC_COMPILE_CACHE)
    try:
        _import_modules(args.imports)
        with caller("cli"):  # hints name the flags (--overwrite, --set name=...), not keyword arguments
            return args.func(args)
    except JaxrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
