"""One experiment end to end: data -> model -> members' training -> test metrics -> ``runs/<name>/``.

:func:`train_members` is the one path every training takes: a list of configurations that differ
only in :data:`MEMBER_KEYS` (seed, learning rate, L2) becomes one stacked state, one compiled
member engine (:mod:`jaxrec.train.engine`), one fit loop and one vmapped test evaluation.
:func:`run` (``jaxrec train``, ``jaxrec.run``) is its one-member case; :mod:`jaxrec.experiment.studies.sweep`
groups a grid into as few such programs as the shapes allow.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxrec.adversarial.substitution import STATE_HPARAMS
from jaxrec.config import Config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import (
    check_ks,
    compile_evaluator,
    compile_members_evaluator,
    evaluate_params,
    model_chunk,
    split_ranking,
)
from jaxrec.experiment import programs
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.experiment.data import load_split
from jaxrec.experiment.members import MEMBER_KEYS, Training, build_training, structure  # noqa: F401 (re-exported)
from jaxrec.experiment.output import HistoryLog, check_writable, run_dir_of, written
from jaxrec.experiment.programs import ProgramKey, shapes_of
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.experiment.settings import check_train
from jaxrec.experiment.train_outputs import write_train_run
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.train.engine import Engine, init_tracker
from jaxrec.train.loop import FitResult, MembersFit, fit, member_record
from jaxrec.train.parallel import check_batch_size, host_tree, mesh_from_config, place_members
from jaxrec.train.state import learning_rate, member, with_lr


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
class MembersRun:
    """What :func:`train_members` produced: per-member test metrics, the stacked fit, timing."""

    configs: list
    metrics: list[dict]
    fit: MembersFit
    training: Training
    split: Split
    timing: dict
    engine: Engine  #: the compiled programs that trained them (shared by every run of the same key)


def train_members(
    cfgs: list[Config],
    split: Split,
    progress: bool = True,
    resume: bool = False,
    ckpt_cfg: Config | None = None,
    trains: list[Interactions] | None = None,
    on_record=None,
    capacity: int | dict | None = None,
    test: bool = True,
) -> MembersRun:
    """Train the member configurations ``cfgs`` in one program and test each member.

    ``on_record(record)``: called with each epoch's record of the fit loop as it finishes (the
    run writer appends it to ``history.jsonl``).

    ``trains``: each member's own training set (see :func:`build_training`, and ``capacity``
    there); the test ranking is ``split``'s (its training and validation items masked) for every
    member; ``test=False`` skips it (``metrics`` is empty).

    ``ckpt_cfg`` (default ``cfgs[0]``) names the checkpoint directory and settings; ``resume``
    continues from its latest checkpoint. Divergence and early stopping are per member; a single
    member's divergence raises :class:`~jaxrec.train.loop.NonFiniteLossError`.

    The steps, in order: build the training (:func:`build_training`), place it on the mesh
    (:func:`_placed`), the validation (:func:`_validation`), the engine of its program key
    (:func:`_engine`), resume (:func:`_resumed`), fit with checkpoints (:func:`_fit`), test the
    best members (:func:`_test`), and the timing (:func:`_timing`).
    """
    base = cfgs[0]
    with config_key("eval.ks"):
        ks = check_ks(base.eval.ks, split.n_items)
    training = build_training(cfgs, split, trains, capacity)
    n = len(cfgs)
    state, mesh = _placed(training, base)
    chunk = base.eval.chunk if base.eval.chunk is not None else model_chunk(training.model, split.n_items, n)
    valid, validate, valid_ks = _validation(base, split, training.model, chunk, ks)
    engine = _engine(training, base, state, valid, validate, valid_ks, mesh)
    ckpt = checkpointer_for(ckpt_cfg or base, resume)
    tracker, start = None, 0
    if resume:
        state, tracker, start = _resumed(ckpt, engine, state, validate is not None, base.train.epochs)
    result = _fit(engine, state, training.data, valid, tracker, start, base.train, ckpt, on_record, progress)
    best = result.best if jax.process_count() == 1 else host_tree(result.best)
    ranking = split_ranking(split, "test", chunk, **ranking_settings(base, training.model)) if test else None
    metrics, eval_s = _test(training, best, ranking, ks)
    return MembersRun(list(cfgs), metrics, result, training, split, _timing(result, eval_s, n, engine), engine)


def _placed(training: Training, base: Config):
    """The members' state placed on ``parallel``'s mesh (the resume template's layout), and the
    mesh (None: one device)."""
    p = base.parallel
    with config_key("parallel"):
        mesh = mesh_from_config(p.data, p.model, p.member)
    state = training.state
    if mesh is not None:
        with config_key("train.batch_size"):
            check_batch_size(training.batch_size, mesh)
        state = place_members(state, mesh)
    return state, mesh


def _validation(base: Config, split: Split, model, chunk: int, ks: tuple):
    """``(valid ranking, validate(params, data, ranking), valid_ks)`` when ``train.eval_every > 0``
    (the monitored metric's K added to ``ks``), else ``(None, None, None)``."""
    t_cfg = base.train
    if t_cfg.eval_every <= 0:
        return None, None, None
    if split.valid is None:
        raise JaxrecError(
            f"train.eval_every={t_cfg.eval_every} needs a validation part, and this split has none: give "
            "data.ratios a validation share (e.g. [0.8, 0.1, 0.1]), or data.valid_path for a predefined split"
        )
    valid = split_ranking(split, "valid", chunk, **ranking_settings(base, model))
    valid_ks = tuple(sorted(set(ks) | {int(t_cfg.monitor.partition("@")[2])}))
    valid_ks = check_ks(valid_ks, split.n_items)

    def validate(params, data, ranking):
        return evaluate_params(model, {**params, **data.inputs}, ranking, valid_ks)

    return valid, validate, valid_ks


def _engine(training: Training, base: Config, state, valid, validate, valid_ks, mesh) -> Engine:
    """The member engine of this training's :class:`~jaxrec.experiment.programs.ProgramKey`,
    built once per key in a process."""
    t_cfg, n = base.train, len(training.configs)
    key = ProgramKey(
        training.spec,
        n,
        training.data_batched,
        shapes_of((training.data, valid)),
        None if validate is None else (valid_ks, t_cfg.monitor, t_cfg.patience),
        None if mesh is None else mesh.shape_tuple,
        programs.member_loop(base.parallel.member_loop, state, n, mesh),
    )
    return programs.engine(key, validate, t_cfg.monitor, t_cfg.patience, mesh)


def _resumed(ckpt, engine: Engine, state, validates: bool, epochs: int):
    """``(state, tracker, start epoch)`` from the latest checkpoint; the config's hyperparameters
    win over the saved ones (equal in an exact resume)."""
    n = engine.n
    template = {"state": state, "tracker": init_tracker(engine.keep(state), n, validates)}
    tree, start = ckpt.resume(template)
    saved = {k: v for k, v in tree["state"].hparams.items() if k in STATE_HPARAMS}  # training state
    state = with_lr(tree["state"].replace(hparams={**state.hparams, **saved}), learning_rate(state))
    if start >= epochs:
        print(
            f"nothing to do: the checkpoint in {ckpt.directory} is at epoch {start} of train.epochs={epochs}",
            file=sys.stderr,
        )
    else:
        print(f"resuming from epoch {start} ({ckpt.directory}) up to epoch {epochs}", file=sys.stderr)
    return state, tree["tracker"], start


def _fit(engine: Engine, state, data, valid, tracker, start: int, t_cfg, ckpt, on_record, progress: bool) -> MembersFit:
    """The fit loop from ``start`` to ``train.epochs``, checkpointing as ``ckpt`` says (a NaN/inf
    loss raises before the bad state is saved: the last checkpoint is good) and handing each
    epoch's record to ``on_record``."""

    def on_epoch_end(epoch, state, tracker, record):
        if ckpt is not None:
            ckpt.maybe_save(epoch, {"state": state, "tracker": tracker}, {"loss": record["loss"]})
        if on_record is not None:
            on_record(record)

    try:
        result = fit(
            engine,
            state,
            data,
            epochs=max(t_cfg.epochs - start, 0),
            valid=valid,
            eval_every=t_cfg.eval_every,
            tracker=tracker,
            progress=progress,
            on_epoch_end=on_epoch_end if ckpt or on_record else None,
            start_epoch=start,
        )
        if ckpt is not None:
            last = result.history[-1]["epoch"] if result.history else start
            ckpt.save_final(last, {"state": result.state, "tracker": result.tracker})
    finally:
        if ckpt is not None:
            ckpt.close()
    return result


def _test(training: Training, best, ranking, ks: tuple) -> tuple[list, float]:
    """Each member's ``best`` params on the test ``ranking`` (None: not tested, ``[]``), and the
    seconds the compiled evaluation took (its compilation excluded)."""
    model, n = training.model, len(training.configs)
    t0 = time.perf_counter()
    if ranking is None:
        metrics = []
    elif n == 1:
        variables = {**member(best, 0), **training.inputs}
        evaluator = compile_evaluator(model, variables, ranking, ks)
        t0 = time.perf_counter()
        metrics = [evaluator(variables, ranking)]
    else:
        evaluator = compile_members_evaluator(model, best, training.inputs, ranking, ks, training.data_batched)
        t0 = time.perf_counter()
        metrics = evaluator(best, training.inputs, ranking)
    return metrics, time.perf_counter() - t0


def _timing(result: MembersFit, eval_s: float, n: int, engine: Engine) -> dict:
    """The run's timing: the median epoch after the compiling one, compilation, evaluation and
    how often each program was traced."""
    secs = [h["seconds"] for h in result.history]
    return {
        "train_s_per_epoch_median": float(np.median(secs[1:] if len(secs) > 1 else secs)) if secs else 0.0,
        "compile_s": result.compile_s,
        "eval_s": eval_s,
        "members": n,
        "traces": {"epoch": engine.epoch.traces(), "validate": engine.validate.traces() if engine.validate else 0},
    }


def run(
    cfg: Config,
    progress: bool = True,
    write: bool = True,
    split: Split | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> RunResult:
    """Train and test one configuration; writes ``<output_dir>/<name>/`` when ``write`` (a
    directory holding another run is refused unless ``overwrite`` replaces it).

    ``resume`` continues from the latest checkpoint (``cfg.checkpoint``) up to ``train.epochs``;
    ``cfg.parallel`` shards the update steps over a device mesh (:mod:`jaxrec.train.parallel`).
    """
    check_train(cfg)  # every setting before the data is read
    if write and jax.process_index() == 0:
        check_writable(cfg, "train", overwrite, resume)  # before any work: a bad output_dir must not cost the run
    split = load_split(cfg.data, sequential=is_sequential(MODELS[cfg.model.name])) if split is None else split
    writing = write and jax.process_index() == 0
    # history.jsonl grows as epochs finish and keeps the epochs before a resume
    log = HistoryLog(run_dir_of(cfg) / "history.jsonl", resume) if writing else None
    try:
        out = train_members(
            [cfg],
            split,
            progress=progress,
            resume=resume,
            on_record=log and (lambda rec: log.append(member_record(rec, 0))),
        )
    finally:
        if log is not None:
            log.close()
    one = out.fit.member(0)
    if jax.process_count() > 1:  # a collective, on every process: the saved model is host arrays
        one = dataclasses.replace(one, best_params=host_tree(one.best_params))
    if log is not None:
        one = dataclasses.replace(one, history=log.records)
    timing = {k: v for k, v in out.timing.items() if k not in ("members", "traces")}
    metrics = out.metrics[0]
    run_dir = written(cfg, write_train_run, cfg, metrics, one, split, timing) if writing else None
    return RunResult(cfg, metrics, one, split, out.training.model, out.training.inputs, timing, run_dir)
