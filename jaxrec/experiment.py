"""One experiment end to end: data -> model -> training -> test metrics -> ``runs/<name>/``.

This is what ``jaxrec train`` runs; it is also the library's one-call API (``jaxrec.train``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import optax

from jaxrec import data as D
from jaxrec.config import Config, DataConfig, save_config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import check_ks, compile_evaluator, model_chunk, split_ranking
from jaxrec.models import build_model
from jaxrec.train.checkpoint import checkpointer_for
from jaxrec.train.loop import FitResult, fit, jit_epoch
from jaxrec.train.parallel import host_tree, mesh_from_config, shard_training
from jaxrec.train.state import create_state
from jaxrec.train.steps import make_epoch, make_loss_fn, make_train_step, train_data

SPLITS = ("random", "temporal", "leave_one_out", "predefined")


def _clean(inter: Interactions, cfg: DataConfig, compact: bool) -> Interactions:
    if cfg.deduplicate:
        inter = D.deduplicate(inter)
    if inter.ratings is not None:
        inter = D.to_implicit(inter, cfg.implicit_threshold, compact=compact)
    elif cfg.implicit_threshold is not None:
        raise JaxrecError(f"data.implicit_threshold: {inter.source} has no ratings to threshold")
    return inter


def load_split(cfg: DataConfig) -> Split:
    """Load, clean and split the data the config names.

    Order: read -> deduplicate -> implicit feedback (every rating a positive, or rating >=
    ``implicit_threshold``) -> k-core -> split. Predefined splits (LightGCN files, or
    ``test_path``) keep their id space; k-core filtering is refused for them.
    """
    if cfg.split not in SPLITS:
        raise JaxrecError(f"data.split: unknown split {cfg.split!r}; choose one of {SPLITS}")
    table = dict(
        user_col=cfg.user_col, item_col=cfg.item_col, rating_col=cfg.rating_col,
        time_col=cfg.time_col, delimiter=cfg.delimiter,
    )
    if cfg.test_path is not None:
        loaded = D.read_split_files(cfg.dataset, cfg.test_path, cfg.valid_path, **table)
    else:
        is_table = cfg.dataset not in D.DATASETS and Path(cfg.dataset).is_file() and (
            Path(cfg.dataset).name not in ("u.data", "ratings.dat", "ratings.csv")
        )
        loaded = D.load_dataset(cfg.dataset, **(table if is_table else {}))
    if isinstance(loaded, Split):
        if cfg.split != "predefined":
            raise JaxrecError(
                f"data.split: {cfg.dataset} comes with a predefined train/test split; "
                f"set data.split: predefined (got {cfg.split!r})"
            )
        if cfg.user_core or cfg.item_core:
            raise JaxrecError("data.user_core/item_core: k-core filtering would break a predefined split")
        parts = [None if p is None else _clean(p, cfg, compact=False) for p in (loaded.train, loaded.valid, loaded.test)]
        return Split(train=parts[0], valid=parts[1], test=parts[2], info=D.split_info(*parts))
    if cfg.split == "predefined":
        raise JaxrecError(
            f"data.split: predefined, but {cfg.dataset} is a single file (give data.test_path)"
        )
    inter = _clean(loaded, cfg, compact=True)
    if cfg.user_core or cfg.item_core:
        inter = D.kcore(inter, cfg.user_core, cfg.item_core)
    if cfg.split == "random":
        return D.random_ratio(inter, cfg.ratios, seed=cfg.seed)
    if cfg.split == "temporal":
        return D.temporal_ratio(inter, cfg.ratios)
    return D.leave_one_out(inter, valid=len(cfg.ratios) == 3 and cfg.ratios[1] > 0)


@dataclasses.dataclass
class RunResult:
    """Everything one run produced. ``metrics`` holds the test metrics (``recall@20`` ...)."""

    config: Config
    metrics: dict
    fit: FitResult
    split: Split
    model: object
    inputs: dict
    timing: dict
    run_dir: Path | None

    @property
    def params(self):
        return self.fit.best_params


@dataclasses.dataclass
class Training:
    """What one configuration trains: the module, its non-trainable inputs, the initial state,
    the training data (an array pytree) and the *unjitted* ``epoch(state, data)`` (jit it with
    :func:`jaxrec.train.loop.jit_epoch`, or shard it with :mod:`jaxrec.train.parallel`)."""

    model: object
    inputs: dict
    state: object
    data: object
    epoch: object


def build_training(cfg: Config, split: Split) -> Training:
    """Model, state, data and epoch function for ``cfg`` on ``split`` (the setup of :func:`run`,
    shared with the benchmarks so that they measure exactly what ``jaxrec train`` runs)."""
    t_cfg = cfg.train
    if t_cfg.epochs < 0 or t_cfg.n_negatives < 1 or t_cfg.batch_size < 1:
        raise JaxrecError("train.epochs must be >= 0, train.n_negatives and train.batch_size >= 1")
    if t_cfg.negative_sampling not in ("uniform", "popularity"):
        raise JaxrecError(
            f"train.negative_sampling: unknown method {t_cfg.negative_sampling!r} (uniform, popularity)"
        )
    model, inputs = build_model(cfg.model, split.train)
    state = create_state(model, jax.random.key(t_cfg.seed), optax.adam(t_cfg.lr), inputs)
    alpha = t_cfg.popularity_alpha if t_cfg.negative_sampling == "popularity" else None
    data = train_data(split.train, t_cfg.batch_size, inputs, alpha)
    step = make_train_step(make_loss_fn(model, t_cfg.loss, t_cfg.l2))
    epoch = make_epoch(step, t_cfg.batch_size, t_cfg.n_negatives, t_cfg.negative_sampling)
    return Training(model, inputs, state, data, epoch)


def run(
    cfg: Config, progress: bool = True, write: bool = True, split: Split | None = None, resume: bool = False
) -> RunResult:
    """Train and test one configuration; writes ``<output_dir>/<name>/`` when ``write``.

    ``resume`` continues from the latest checkpoint (``cfg.checkpoint``) up to ``train.epochs``;
    ``cfg.parallel`` shards the update steps over a device mesh (:mod:`jaxrec.train.parallel`).
    """
    t_cfg = cfg.train
    split = load_split(cfg.data) if split is None else split
    ks = check_ks(cfg.eval.ks, split.n_items)
    training = build_training(cfg, split)
    model, inputs, state, tdata, epoch = (
        training.model, training.inputs, training.state, training.data, training.epoch
    )
    mesh = mesh_from_config(cfg.parallel.data, cfg.parallel.model)  # None: the plain 1-device path
    if mesh is None:
        epoch_fn = jit_epoch(epoch)
    else:
        state, tdata, epoch_fn = shard_training(mesh, state, tdata, epoch, t_cfg.batch_size)
    ckpt = checkpointer_for(cfg, resume)
    state, start = ckpt.resume(state) if resume else (state, 0)
    chunk = cfg.eval.chunk if cfg.eval.chunk is not None else model_chunk(model, split.n_items)
    valid = split_ranking(split, "valid", chunk) if t_cfg.eval_every > 0 else None
    try:  # a NaN/inf loss raises before the bad state is saved: the last checkpoint is good
        result = fit(
            model, state, tdata, epoch_fn, max(t_cfg.epochs - start, 0), valid=valid,
            eval_every=t_cfg.eval_every, ks=ks, monitor=t_cfg.monitor, patience=t_cfg.patience,
            progress=progress, on_epoch_end=ckpt and ckpt.on_epoch_end, start_epoch=start,
        )
        if ckpt is not None:
            ckpt.save_final(result.history[-1]["epoch"] if result.history else start, result.state)
    finally:
        if ckpt is not None:
            ckpt.close()
    test = split_ranking(split, "test", chunk)
    variables = {**(result.best_params if jax.process_count() == 1 else host_tree(result.best_params)), **inputs}
    evaluator = compile_evaluator(model, variables, test, ks)
    t0 = time.perf_counter()
    metrics = evaluator(variables, test)
    eval_s = time.perf_counter() - t0
    secs = result.epoch_seconds
    timing = {
        "train_s_per_epoch_median": float(np.median(secs[1:] if len(secs) > 1 else secs)) if secs else 0.0,
        "compile_s": result.compile_s,
        "eval_s": eval_s,
    }
    run_dir = _write_run(cfg, metrics, result, split, timing) if write and jax.process_index() == 0 else None
    return RunResult(cfg, metrics, result, split, model, inputs, timing, run_dir)


def _write_run(cfg: Config, metrics: dict, result: FitResult, split: Split, timing: dict) -> Path:
    run_dir = Path(cfg.output_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    out = {
        **metrics,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        **timing,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "split": dict(split.info),
    }
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=2) + "\n")
    with open(run_dir / "history.jsonl", "w") as f:
        for rec in result.history:
            f.write(json.dumps(rec) + "\n")
    return run_dir


def results_table(metrics: dict, title: str = "test"):
    """A rich Table: one row per metric, one column per K."""
    from rich.table import Table

    ks = sorted({int(k.split("@")[1]) for k in metrics if "@" in k})
    names = [m for m in ("recall", "ndcg", "precision", "hit", "mrr") if any(f"{m}@{k}" in metrics for k in ks)]
    table = Table(title=title)
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for m in names:
        table.add_row(m, *(f"{metrics[f'{m}@{k}']:.4f}" if f"{m}@{k}" in metrics else "-" for k in ks))
    return table
