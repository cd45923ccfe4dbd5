"""``jaxrec sweep``: every combination of a grid, trained as members of as few programs as possible.

A grid is a list of ``(config key, values)``; the sweep trains the Cartesian product. Combinations
that differ only in :data:`~jaxrec.experiment.training.MEMBER_KEYS` (seed, learning rate, L2,
APR's strengths) are members of one group -- one stacked state, one ``vmap`` over members --
trained by :func:`~jaxrec.experiment.training.train_members`; any other key (model size, data,
loss, epochs, ...) starts another group, trained after the previous one. Groups whose compiled
programs are equal (e.g. they differ only in ``train.epochs``) share them
(:mod:`jaxrec.experiment.programs`). Results: one row per member (its grid values, test metrics,
best epoch, whether it diverged or stopped early) and one summary row per setting (the grid values
other than ``train.seed``) with the mean and the sample standard deviation (``ddof=1``) of every
metric over the seeds that did not diverge.

Writes ``<output_dir>/<name>/config.yaml`` (the base config and the grid), ``results.csv`` (the
member rows), ``results.json`` (rows, summary, timing) and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import yaml

from jaxrec.config import CheckpointConfig, Config, from_dict, to_dict
from jaxrec.errors import JaxrecError
from jaxrec.experiment.checkpoints import checkpoint_dir
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import atomic_write, write_results
from jaxrec.experiment.report import Table, cell, markdown_report
from jaxrec.experiment.saved import save_model
from jaxrec.experiment.studies.base import StudyResult, summarise
from jaxrec.experiment.training import MembersRun, structure, train_members
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential

NAME = "sweep"
HELP = "train every combination of a grid as members of one program"
RESUMABLE = True
SEED_KEY = "train.seed"


@dataclasses.dataclass
class Extras:
    """A sweep's own results: the grid and each group's :class:`MembersRun`."""

    grid: dict
    groups: list[MembersRun]


@dataclasses.dataclass
class Plan:
    combos: list  #: ``[(values {key: value}, config)]``
    grid: dict  #: ``{key: [values]}``
    split: object = None  #: used for every combination whose data section is the base config's


def arguments(parser) -> None:
    parser.add_argument(
        "--grid",
        "-g",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and its values, e.g. --grid train.seed=0,1,2,3 (repeatable; the sweep is their product)",
    )


def inputs(args) -> dict:
    return {"grid": parse_grid(args.grid)}


def _split_values(raw: str) -> list[str]:
    """Split ``a,b,[1,2]`` on the commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def parse_grid(items: list[str]) -> list[tuple[str, list]]:
    """``["train.seed=0,1,2", "train.lr=0.001,0.005"]`` -> ``[(key, [values])]`` (YAML values).

    Raises :class:`JaxrecError` naming the item for a missing ``=``, an empty value or a key
    given twice (unknown keys and wrong types are caught by :func:`expand`).
    """
    grid, seen = [], set()
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise JaxrecError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. train.seed=0,1,2")
        if key in seen:
            raise JaxrecError(f"--grid {item!r}: {key} is given twice")
        seen.add(key)
        values = []
        for v in _split_values(raw):
            if not v.strip():
                raise JaxrecError(f"--grid {item!r}: an empty value")
            try:
                values.append(yaml.safe_load(v))
            except yaml.YAMLError as e:
                raise JaxrecError(f"--grid {item!r}: cannot parse {v!r}: {e}") from None
        grid.append((key, values))
    return grid


def expand(cfg: Config, grid) -> list[tuple[dict, Config]]:
    """Every combination of ``grid`` (``[(key, values)]`` or ``{key: values}``) applied to ``cfg``:
    ``[(values {key: value}, config)]``. Each combination is type-checked like a config file; a bad
    key or value is one :class:`JaxrecError` naming it, raised before anything trains."""
    grid = list(grid.items()) if isinstance(grid, dict) else list(grid)
    if not grid:
        raise JaxrecError("the sweep grid is empty (give at least one --grid KEY=V1,V2)")
    base = to_dict(cfg)
    out = []
    for combo in itertools.product(*(vals for _, vals in grid)):
        values = dict(zip((k for k, _ in grid), combo))
        tree = yaml.safe_load(yaml.safe_dump(base))
        for key, value in values.items():
            parts = key.split(".")
            node = tree
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise JaxrecError(f"--grid {key}: {p} is not a config section")
                node = node[p]
            if parts[-1] not in node:
                raise JaxrecError(
                    f"--grid {key}: unknown config key (known in {'.'.join(parts[:-1]) or 'top level'}: "
                    f"{', '.join(sorted(node))})"
                )
            node[parts[-1]] = value
        try:
            out.append((values, from_dict(Config, tree)))
        except JaxrecError as e:
            raise JaxrecError(f"--grid {', '.join(f'{k}={v}' for k, v in values.items())}: {e}") from None
    return out


def check(cfg: Config, base_dir=".", grid=(), split=None) -> Plan:
    """Every combination of ``grid`` type-checked (:func:`expand`)."""
    grid = list(grid.items()) if isinstance(grid, dict) else list(grid)
    return Plan(expand(cfg, grid), {k: list(v) for k, v in grid}, split)


def describe(cfg: Config, plan: Plan) -> str:
    return f"sweep of {len(plan.combos)} {cfg.model.name} trainings on {cfg.data.dataset}"


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    groups: dict = {}
    for i, (_, c) in enumerate(plan.combos):
        groups.setdefault(structure(c), []).append(i)
    splits: dict = {}
    rows: list = [None] * len(plan.combos)
    runs, t0 = [], time.perf_counter()
    for g, (shape, idx) in enumerate(groups.items()):
        seq = is_sequential(MODELS[shape.model.name])
        if (shape.data, seq) not in splits:
            given = plan.split is not None and shape.data == cfg.data
            splits[shape.data, seq] = plan.split if given else load_split(shape.data, sequential=seq)
        ck = cfg.checkpoint
        ckpt_cfg = dataclasses.replace(
            cfg, checkpoint=CheckpointConfig(ck.every, ck.keep, str(checkpoint_dir(cfg) / f"group-{g}"))
        )
        members = [plan.combos[i][1] for i in idx]
        out = train_members(members, splits[shape.data, seq], progress=progress, resume=resume, ckpt_cfg=ckpt_cfg)
        runs.append(out)
        for m, i in enumerate(idx):
            one = out.fit.member(m)
            rows[i] = {
                **plan.combos[i][0],
                "group": g,
                **out.metrics[m],
                "best_epoch": one.best_epoch,
                "epochs": one.epochs,
                "failed": one.failed,
                "stopped": one.stopped,
            }
    timing = {
        "wall_s": time.perf_counter() - t0,
        "programs": len(groups),
        "compiled": len({id(r.engine) for r in runs}),
        "members": len(plan.combos),
        "train_s_per_epoch_median": [r.timing["train_s_per_epoch_median"] for r in runs],
        "compile_s": [r.timing["compile_s"] for r in runs],
    }
    summary = summarise(rows, [k for k in plan.grid if k != SEED_KEY])
    return StudyResult(NAME, cfg, rows, summary, timing, Extras(plan.grid, runs))


def tables(result: StudyResult, metrics: tuple[str, ...] | None = None) -> list[Table]:
    """One row per setting, ``mean ± std`` over seeds of ``metrics`` (default: recall and NDCG at
    20, or at the largest K evaluated when 20 is not)."""
    title = f"{result.config.name}: test ({result.config.eval.protocol} ranking), mean ± std over seeds"
    if not result.summary:
        return [Table(title, [], [])]
    first = result.summary[0]
    setting = [k for k in first if not k.endswith(("_mean", "_std")) and k not in ("n", "failed")]
    if metrics is None:
        ks = sorted({int(k.split("@")[1][: -len("_mean")]) for k in first if k.endswith("_mean") and "@" in k})
        k = 20 if 20 in ks else ks[-1]
        metrics = (f"recall@{k}", f"ndcg@{k}")
    shown = [m for m in metrics if f"{m}_mean" in first]
    rows = [
        [str(rec[k]) for k in setting]
        + [f"{rec['n']}" + (f" ({rec['failed']} failed)" if rec["failed"] else "")]
        + [cell(rec, m) for m in shown]
        for rec in result.summary
    ]
    return [Table(title, [*setting, "seeds", *shown], rows)]


def footer(result: StudyResult) -> str:
    t = result.timing
    epochs = ", ".join(f"{s:.3f}" for s in t["train_s_per_epoch_median"])
    return (
        f"{t['members']} members in {t['programs']} program(s) ({t['compiled']} compiled), {t['wall_s']:.1f} s | "
        f"epoch {epochs} s (median, all members)"
    )


def save_members(result: StudyResult, run_dir) -> None:
    """Every member's model in ``members/<row>/model/`` (row = its row in ``results.csv``;
    a diverged member keeps none)."""
    position: dict = {}
    for i, row in enumerate(result.rows):
        g = row["group"]
        m = position[g] = position.get(g, -1) + 1
        run = result.extras.groups[g]
        if not row["failed"]:
            one = run.fit.member(m)
            save_model(Path(run_dir) / "members" / str(i), run.configs[m], one.best_params, run.split, one.best_epoch)


def write_report(result: StudyResult, run_dir) -> None:
    """``config.yaml`` (with the grid), ``results.csv``, ``results.json`` and ``report.md``."""
    grid = result.extras.grid
    payload = {"grid": grid, "rows": result.rows, "summary": result.summary, "timing": result.timing}
    write_results(result.config, result.rows, payload, {"grid": grid}, command=NAME)
    save_members(result, run_dir)
    intro = [f"Grid: `{grid}`; {footer(result)}.", "Each member's model: `members/<row>/` (`jaxrec.load_run`)."]
    text = markdown_report(f"Sweep: {result.config.name}", intro, tables(result), [], result.timing)
    atomic_write(run_dir / "report.md", text)
