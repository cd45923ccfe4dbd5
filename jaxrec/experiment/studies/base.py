"""The shape of every study, and what several studies share.

A study (``jaxrec sweep``, ``robustness``, ``attack``, ``gan``) is one module of
:mod:`jaxrec.experiment.studies` with the same parts:

* ``NAME``, ``HELP`` -- its command and one line of help; optionally ``DEFAULTS`` (what the
  built-in config runs), ``RESUMABLE`` (``--resume`` continues it), ``arguments(parser)`` /
  ``inputs(args)`` (its own command-line flags and the keyword inputs they give: ``jaxrec sweep
  --grid``) and ``footer(result)`` (the line printed after the tables);
* ``check(cfg, base_dir, **inputs) -> plan`` -- every value, victim file and data-dependent
  setting, before any training; the plan holds what was read (victims, the split);
* ``describe(cfg, plan) -> str`` -- the line printed before it runs;
* ``run(cfg, plan, progress, console, resume) -> StudyResult`` -- the work;
* ``tables(result) -> [Table]`` -- what the CLI prints and ``report.md`` holds;
* ``write_report(result, run_dir)`` -- its files (results, ``report.md``, plots).

:func:`execute` runs any of them the same way: check, prove the run directory writable, run,
write. Shared here, never per study: victims and their overrides (:func:`victims`), training
seeds as members (:func:`seed_configs`), drops against the clean model (:func:`with_drops`),
``mean ± std`` summaries (:func:`summarise`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrec.config import CheckpointConfig, Config, load_config, resolve_config
from jaxrec.errors import JaxrecError, config_key, option
from jaxrec.experiment.output import check_writable, run_dir_of, written
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential


@dataclasses.dataclass
class StudyResult:
    """What a study measured.

    Attributes:
      study: the study's name; config: the configuration it ran.
      rows: one dict per measured unit (a member, a (victim, strength, seed), a kind of fake user);
      summary: rows aggregated over seeds (``<metric>_mean`` / ``_std``, :func:`summarise`).
      timing: seconds, ``wall_s`` among them.
      extras: the study's own results (a dataclass of its module: detection rows, ROC curves, the
        trained groups, the GAN's history ...).
      run_dir: where it was written (None when not written).
    """

    study: str
    config: Config
    rows: list[dict]
    summary: list[dict]
    timing: dict
    extras: Any = None
    run_dir: Path | None = None


def execute(
    study,
    cfg: Config,
    plan=None,
    base_dir: str | Path = ".",
    progress: bool = True,
    write: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    console=None,
    **inputs,
) -> StudyResult:
    """Run ``study`` (a module of :mod:`jaxrec.experiment.studies`) on ``cfg``: ``check`` (unless a
    ``plan`` from it is given), then -- when ``write`` -- prove ``<output_dir>/<name>`` writable
    (refused if it holds another run, unless ``overwrite`` or ``resume``), ``run``, and write the
    study's files. ``inputs`` are the study's own (a sweep's ``grid``, a preloaded ``split``)."""
    if resume and not getattr(study, "RESUMABLE", False):
        raise JaxrecError(f"{option('resume')}: the {study.NAME} study cannot resume")
    if plan is None:
        plan = study.check(cfg, base_dir, **inputs)
    if write and jax.process_index() == 0:
        check_writable(cfg, study.NAME, overwrite, resume)  # before any work: a bad output_dir costs nothing
    result = study.run(cfg, plan, progress=progress, console=console, resume=resume)
    if write and jax.process_index() == 0:
        result.run_dir = written(cfg, _write, study, result)
    return result


def _write(study, result: StudyResult) -> Path:
    run_dir = run_dir_of(result.config)
    run_dir.mkdir(parents=True, exist_ok=True)
    study.write_report(result, run_dir)
    return run_dir


# ------------------------------------------------------------------------------------------------
# shared by several studies


def victims(
    cfg: Config, base_dir: str | Path = ".", section: str = "robustness", sequences: bool = False
) -> list[tuple[str, Config]]:
    """``(label, config)`` per victim: each ``<section>.victims`` entry (``robustness`` or
    ``attack``) -- a config file (relative to ``base_dir``; else a shipped config of that name,
    :func:`~jaxrec.config.load.resolve_config`), optionally followed by ``KEY=VALUE``
    overrides separated by spaces (``ml100k-mf.yaml train.epochs=40``) -- with this config's data,
    eval, output, robustness and attack sections; or this config itself when there are none.
    Labels are the victims' names. Sequence models are victims only where the study takes them
    (``sequences``)."""
    entries = getattr(cfg, section).victims
    out = (
        [(cfg.name, cfg)]
        if not entries
        else [entry_config(cfg, entry, base_dir, f"{section}.victims[{i}]") for i, entry in enumerate(entries)]
    )
    for i, (label, v) in enumerate(out):
        if is_sequential(MODELS[v.model.name]) and not sequences:
            where = f"{section}.victims[{i}]" if entries else "model.name"
            raise JaxrecError(
                f"{where}: {label} is a sequence model ({v.model.name}); the {section} study takes embedding models "
                "(sequence victims come with the sequence robustness work)"
            )
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise JaxrecError(f"{section}.victims: two victims share a name ({labels}); give each config its own name")
    return out


def entry_config(cfg: Config, entry: str, base_dir: str | Path, key: str) -> tuple[str, Config]:
    """``(label, config)`` of one entry ``"file.yaml KEY=VALUE ..."`` (a victim, a surrogate): that
    file's config (next to the config holding the entry, ``base_dir``; else the shipped config of
    that name) with the overrides, taking this config's data, eval, output, robustness, attack
    and optimized sections (one split, one set of cut-offs for all); a mistake names ``key``.
    The label is the entry's name."""
    path, *overrides = entry.split()
    with config_key(key):
        v = load_config(resolve_config(path, base_dir), overrides)
    shared = {s: getattr(cfg, s) for s in ("data", "eval", "robustness", "attack", "optimized")}
    return v.name, dataclasses.replace(
        v, name=f"{cfg.name}-{v.name}", output_dir=cfg.output_dir, checkpoint=CheckpointConfig(), **shared
    )


def seed_configs(cfg: Config, n: int) -> list[Config]:
    """``cfg`` with ``train.seed``, ``+1``, ... ``+ n - 1``: the members of one program."""
    return [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + s)) for s in range(n)]


def with_drops(row: dict, clean: dict, ks) -> dict:
    """``row`` plus ``drop_<metric>@K = 1 - metric / clean metric`` for recall and NDCG."""
    for k in ks:
        for m in ("recall", "ndcg"):
            c = clean[f"{m}@{k}"]
            row[f"drop_{m}@{k}"] = 1.0 - row[f"{m}@{k}"] / c if c > 0 else float("nan")
    return row


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
        for name in [k for k in rs[0] if "@" in k or k in extra]:
            vals = np.asarray([r[name] for r in ok], np.float64)
            rec[f"{name}_mean"] = float(vals.mean()) if vals.size else float("nan")
            rec[f"{name}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        summary.append(rec)
    return summary


def say(console, progress: bool):
    """``console.log`` when progress is shown, else a function that says nothing."""
    return console.log if console is not None and progress else (lambda *a, **k: None)
