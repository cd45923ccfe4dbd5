"""The ``jaxrec`` command line.

  jaxrec train --config configs/ml100k-mf.yaml [--set train.epochs=50 ...] [--resume]
  jaxrec train --distributed --coordinator HOST:PORT --num-processes N --process-id I ...
  jaxrec sweep --config configs/ml100k-mf.yaml --grid train.seed=0,1,2,3 --grid train.lr=0.001,0.005
  jaxrec gan --config configs/ml100k-gan.yaml
  jaxrec robustness --config configs/ml100k-robustness.yaml
  jaxrec attack --config configs/ml100k-attack.yaml
  jaxrec data info ml-100k

User mistakes (bad files, config keys, names) print one ``error:`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from jaxrec.errors import JaxrecError

DESCRIPTION = "jaxrec: train, attack and harden recommenders in JAX (run 'jaxrec <command> --help')."


def _add_config_args(p: argparse.ArgumentParser, defaults: str = "MF on ml-100k") -> None:
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


def cmd_train(args) -> int:
    from rich.console import Console

    if args.distributed:  # before anything touches a device
        from jaxrec.train.parallel import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    elif any(v is not None for v in (args.coordinator, args.num_processes, args.process_id)):
        raise JaxrecError("--coordinator/--num-processes/--process-id need --distributed")

    from jaxrec.config import load_config
    from jaxrec.experiment import results_table, run

    cfg = load_config(args.config, args.overrides)
    console = Console()
    console.print(f"[bold]{cfg.name}[/]: {cfg.model.name} on {cfg.data.dataset}, {cfg.train.epochs} epochs")
    result = run(cfg, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    t = result.timing
    console.print(results_table(result.metrics, title=f"{cfg.name}: test (best epoch {result.fit.best_epoch})"))
    console.print(
        f"users {result.split.n_users}, items {result.split.n_items}, "
        f"train {len(result.split.train)}, test {len(result.split.test)} | "
        f"epoch {t['train_s_per_epoch_median']:.3f} s (median), compile {t['compile_s']:.2f} s, "
        f"eval {t['eval_s']:.3f} s"
    )
    if result.run_dir is not None:
        console.print(f"wrote {result.run_dir}/metrics.json")
    return 0


def cmd_sweep(args) -> int:
    from rich.console import Console

    from jaxrec.config import load_config
    from jaxrec.experiment import parse_grid, sweep
    from jaxrec.experiment.sweep import expand, summary_table

    cfg = load_config(args.config, args.overrides)
    grid = parse_grid(args.grid)
    n = len(expand(cfg, grid))  # every combination checked before anything trains
    console = Console()
    console.print(f"[bold]{cfg.name}[/]: sweep of {n} {cfg.model.name} trainings on {cfg.data.dataset}")
    result = sweep(cfg, grid, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    console.print(summary_table(result, f"{cfg.name}: test, mean ± std over seeds"))
    t = result.timing
    console.print(
        f"{t['members']} members in {t['programs']} program(s), {t['wall_s']:.1f} s | epoch "
        + ", ".join(f"{s:.3f}" for s in t["train_s_per_epoch_median"])
        + " s (median, all members)"
    )
    if result.run_dir is not None:
        console.print(f"wrote {result.run_dir}/results.csv")
    return 0


def cmd_gan(args) -> int:
    from rich.console import Console

    from jaxrec.config import load_config
    from jaxrec.experiment.gan import run_gan
    from jaxrec.experiment.gan_report import results_tables

    cfg = load_config(args.config, args.overrides)
    console = Console()
    mode = "CFGAN (conditional)" if cfg.gan.conditional else "GAN (fake users)"
    console.print(f"[bold]{cfg.name}[/]: {mode} on {cfg.data.dataset}, {cfg.gan.epochs} epochs")
    result = run_gan(cfg, progress=not args.quiet, console=console, resume=args.resume, overwrite=args.overwrite)
    for t in results_tables(result, cfg.name):
        console.print(t)
    console.print(f"wrote {result.run_dir}/metrics.json")
    return 0


def _study(args, section: str, check, run, tables, what) -> int:
    """``jaxrec robustness`` / ``attack``: check the config and read every victim file before
    any training, run the study, print its tables, say where the report is."""
    from pathlib import Path

    from rich.console import Console

    from jaxrec.config import load_config
    from jaxrec.experiment.robustness import victims
    from jaxrec.robustness.report import rich_table

    cfg = load_config(args.config, args.overrides)
    base_dir = Path(args.config).parent if args.config else Path(".")
    check(cfg)
    names = [label for label, _ in victims(cfg, base_dir, section)]
    console = Console()
    console.print(f"[bold]{cfg.name}[/]: {what(cfg)} on {', '.join(names)} ({cfg.data.dataset})")
    result = run(cfg, base_dir, progress=not args.quiet, console=console, overwrite=args.overwrite)
    for title, header, rows in tables(cfg, result):
        console.print(rich_table(header, rows, title))
    console.print(f"{len(result.rows) + len(getattr(result, 'data_rows', []))} rows in {result.timing['wall_s']:.1f} s")
    if result.run_dir is not None:
        console.print(f"wrote {result.run_dir}/report.md")
    return 0


def cmd_robustness(args) -> int:
    from jaxrec.experiment.robustness import check, run_robustness, tables

    return _study(
        args,
        "robustness",
        check,
        run_robustness,
        lambda cfg, r: tables(cfg, r.summary, r.data_summary, r.worst_users),
        lambda cfg: "robustness",
    )


def cmd_attack(args) -> int:
    from jaxrec.experiment.attack import check, run_attack
    from jaxrec.experiment.attack_report import tables

    return _study(
        args,
        "attack",
        check,
        run_attack,
        tables,
        lambda cfg: f"{', '.join(cfg.attack.kinds)} attacks at sizes {list(cfg.attack.sizes)}",
    )


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


def build_parser() -> argparse.ArgumentParser:
    from jaxrec.version import __version__

    parser = argparse.ArgumentParser(prog="jaxrec", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"jaxrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a recommender and report test metrics")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint (checkpoint.dir)")
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
    p = sub.add_parser("sweep", help="train every combination of a grid as members of one program")
    _add_config_args(p)
    p.add_argument(
        "--grid",
        "-g",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and its values, e.g. --grid train.seed=0,1,2,3 (repeatable; the sweep is their product)",
    )
    p.add_argument("--resume", action="store_true", help="continue each group from its latest checkpoint")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("gan", help="train a GAN over users (fake users, or CFGAN) and report D's scores")
    _add_config_args(p, "the unconditional GAN over ml-100k users")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint (checkpoint.dir)")
    p.set_defaults(func=cmd_gan)
    p = sub.add_parser(
        "robustness", help="perturb trained victims' parameters (many strengths in one pass) and training data; report"
    )
    _add_config_args(p, "MF on ml-100k as the only victim")
    p.set_defaults(func=cmd_robustness)
    p = sub.add_parser(
        "attack", help="inject fake users (random/average/bandwagon/GAN), retrain victims with defenses; target HR"
    )
    _add_config_args(p, "MF on ml-100k as the only victim, all four attacks")
    p.set_defaults(func=cmd_attack)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from jaxrec.experiment import output

    output.INVOCATION = ["jaxrec", *(sys.argv[1:] if argv is None else argv)]  # recorded in run.json
    try:
        return args.func(args)
    except JaxrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
