"""``jaxrec sweep``: every combination of a grid, trained as members of as few programs as possible.

A grid is a list of ``(config key, values)``; the sweep trains the Cartesian product. Combinations
that differ only in :data:`~jaxrec.experiment.training.MEMBER_KEYS` (seed, learning rate, L2)
share one compiled program -- one stacked state, one ``vmap`` over members -- through
:func:`~jaxrec.experiment.training.train_members`; any other key (model size, data, loss, ...)
starts another group, trained after the previous one. Results: one row per member (its grid
values, test metrics, best epoch, whether it diverged or stopped early) and one summary row per
setting (the grid values other than ``train.seed``) with the mean and the sample standard
deviation (``ddof=1``) of every metric over the seeds that did not diverge.

Writes ``<output_dir>/<name>/config.yaml`` (the base config and the grid), ``results.csv`` (the
member rows) and ``results.json`` (rows, summary, timing).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from jaxrec.config import CheckpointConfig, Config, from_dict, to_dict
from jaxrec.errors import JaxrecError
from jaxrec.experiment.checkpoints import checkpoint_dir
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import check_writable, write_results, written
from jaxrec.experiment.training import MembersRun, structure, train_members

SEED_KEY = "train.seed"


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
    """Every combination of ``grid`` applied to ``cfg``: ``[(values {key: value}, config)]``.

    Each combination is type-checked like a config file; a bad key or value is one
    :class:`JaxrecError` naming it, raised before anything trains.
    """
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


@dataclasses.dataclass
class SweepResult:
    """One row per member (grid values, test metrics, best epoch, status), one summary row per
    setting (mean/std over seeds), the groups' :class:`MembersRun` and the output directory."""

    rows: list[dict]
    summary: list[dict]
    groups: list[MembersRun]
    timing: dict
    run_dir: Path | None


def sweep(
    cfg: Config,
    grid,
    progress: bool = True,
    write: bool = True,
    split=None,
    resume: bool = False,
    overwrite: bool = False,
) -> SweepResult:
    """Train every combination of ``grid`` (``[(key, values)]`` or ``{key: values}``) over ``cfg``.

    ``split`` (optional) is used for every combination whose ``data`` section equals ``cfg``'s.
    """
    combos = expand(cfg, grid)
    keys = [k for k, _ in (grid.items() if isinstance(grid, dict) else grid)]
    if write:
        check_writable(cfg, "sweep", overwrite, resume)
    groups: dict = {}
    for i, (_, c) in enumerate(combos):
        groups.setdefault(structure(c), []).append(i)
    splits: dict = {}
    rows: list[dict | None] = [None] * len(combos)
    runs, t0 = [], time.perf_counter()
    for g, (shape, idx) in enumerate(groups.items()):
        data_cfg = shape.data
        if data_cfg not in splits:
            splits[data_cfg] = split if (split is not None and data_cfg == cfg.data) else load_split(data_cfg)
        ck_dir = checkpoint_dir(cfg)
        ckpt_cfg = dataclasses.replace(
            cfg, checkpoint=CheckpointConfig(cfg.checkpoint.every, cfg.checkpoint.keep, str(ck_dir / f"group-{g}"))
        )
        members = [combos[i][1] for i in idx]
        out = train_members(members, splits[data_cfg], progress=progress, resume=resume, ckpt_cfg=ckpt_cfg)
        runs.append(out)
        for m, i in enumerate(idx):
            one = out.fit.member(m)
            rows[i] = {
                **combos[i][0],
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
        "members": len(combos),
        "train_s_per_epoch_median": [r.timing["train_s_per_epoch_median"] for r in runs],
        "compile_s": [r.timing["compile_s"] for r in runs],
    }
    summary = summarise(rows, [k for k in keys if k != SEED_KEY])
    grid_values = {k: list(v) for k, v in (grid.items() if isinstance(grid, dict) else grid)}
    run_dir = written(cfg, _write, cfg, grid_values, rows, summary, timing) if write else None
    return SweepResult(rows, summary, runs, timing, run_dir)


def _metric_names(row: dict, extra: Sequence[str] = ()) -> list[str]:
    return [k for k in row if "@" in k or k in extra]


def summarise(rows: list[dict], setting_keys: list[str], extra: Sequence[str] = ()) -> list[dict]:
    """Per setting (the values of ``setting_keys``): ``n`` seeds, ``failed`` count, and
    ``<metric>_mean`` / ``<metric>_std`` (sample std, 0 for one seed) over the non-failed rows;
    metrics are the keys with an ``@`` and the ``extra`` ones."""
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in setting_keys), []).append(r)
    summary = []
    for setting, rs in out.items():
        ok = [r for r in rs if not r["failed"]]
        rec = {**dict(zip(setting_keys, setting)), "n": len(ok), "failed": len(rs) - len(ok)}
        for name in _metric_names(rs[0], extra):
            vals = np.asarray([r[name] for r in ok], np.float64)
            rec[f"{name}_mean"] = float(vals.mean()) if vals.size else float("nan")
            rec[f"{name}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        summary.append(rec)
    return summary


def _write(cfg, grid: dict, rows, summary, timing) -> Path:
    payload = {"grid": grid, "rows": rows, "summary": summary, "timing": timing}
    return write_results(cfg, rows, payload, {"grid": grid}, command="sweep")


def summary_table(result: SweepResult, title: str, metrics: tuple[str, ...] | None = None):
    """A rich Table: one row per setting, ``mean ± std`` over seeds of ``metrics`` (default:
    recall and NDCG at 20, or at the largest K evaluated when 20 is not)."""
    from rich.table import Table

    table = Table(title=title)
    if not result.summary:
        return table
    first = result.summary[0]
    setting = [k for k in first if not (k.endswith("_mean") or k.endswith("_std")) and k not in ("n", "failed")]
    if metrics is None:
        ks = sorted({int(k.split("@")[1][: -len("_mean")]) for k in first if k.endswith("_mean") and "@" in k})
        k = 20 if 20 in ks else ks[-1]
        metrics = (f"recall@{k}", f"ndcg@{k}")
    shown = [m for m in metrics if f"{m}_mean" in first]
    for k in setting:
        table.add_column(k)
    table.add_column("seeds", justify="right")
    for m in shown:
        table.add_column(m, justify="right")
    for rec in result.summary:
        cells = [str(rec[k]) for k in setting] + [
            f"{rec['n']}" + (f" ({rec['failed']} failed)" if rec["failed"] else "")
        ]
        cells += [f"{rec[f'{m}_mean']:.4f} ± {rec[f'{m}_std']:.4f}" for m in shown]
        table.add_row(*cells)
    return table
