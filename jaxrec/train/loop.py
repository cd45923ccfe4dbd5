"""The one fit loop: a host loop over the member engine's compiled epochs, for one run or many.

:func:`fit` drives an :class:`~jaxrec.train.engine.Engine` (``M`` stacked members; a single
run is ``M == 1``) epoch by epoch: it reads back only the ``[M]`` epoch losses (and validation
scores on evaluation epochs), shows one progress bar, calls ``on_epoch_end`` (checkpoints) and
stops when no member is active any more. Divergence, best parameters and early stopping are
decided per member on device (:class:`~jaxrec.train.engine.Tracker`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxrec.errors import JaxrecError
from jaxrec.train.engine import Engine, Tracker, init_tracker
from jaxrec.train.parallel import max_traces as _max_traces
from jaxrec.train.state import member


class NonFiniteLossError(JaxrecError):
    """Training produced a NaN/inf loss; the message names the epoch."""


@dataclasses.dataclass
class FitResult:
    """One member's training.

    Attributes:
      state: the final train state (of the last good epoch when the member diverged).
      best_params: params of the best validation epoch (the final params without validation).
      history: one dict per epoch: ``epoch``, ``loss``, ``seconds``, and validation metrics
        (``valid/recall@20`` ...) on evaluated epochs.
      best_epoch: 1-based epoch of ``best_params``.
      compile_s: seconds of the first epoch minus the median of the others (compilation).
      failed: the loss became NaN/inf (at ``failed_epoch``); stopped: stopped early.
      epochs: epochs trained in all (a resumed run counts the checkpoint's epochs too).
    """

    state: Any
    best_params: Any
    history: list[dict]
    best_epoch: int
    compile_s: float = float("nan")
    failed: bool = False
    failed_epoch: int = 0
    stopped: bool = False
    epochs: int = 0

    @property
    def epoch_seconds(self) -> list[float]:
        return [h["seconds"] for h in self.history]


@dataclasses.dataclass
class MembersFit:
    """What :func:`fit` returns: the stacked final state, the tracker and one record per epoch
    (``epoch``, ``seconds`` and ``[M]`` lists of every epoch metric / validation score)."""

    state: Any
    tracker: Tracker
    history: list[dict]
    keep: Callable
    compile_s: float = float("nan")

    @property
    def n(self) -> int:
        return int(np.shape(self.tracker.failed)[0])

    @property
    def best(self):
        """The stacked kept pytree of every member's best epoch (final without validation)."""
        return self.keep(self.state) if self.tracker.best is None else self.tracker.best

    def member(self, m: int) -> FitResult:
        """Member ``m`` as a one-run :class:`FitResult` (its epochs only)."""
        t = jax.device_get(self.tracker.replace(best=None))
        hist = [member_record(rec, m) for rec in self.history if rec["active"][m]]
        return FitResult(
            state=member(self.state, m),
            best_params=member(self.best, m),
            history=hist,
            best_epoch=int(t.best_epoch[m]),
            compile_s=self.compile_s,
            failed=bool(t.failed[m]),
            failed_epoch=int(t.failed_epoch[m]),
            stopped=bool(t.stopped[m]),
            epochs=int(t.epochs[m]),
        )


def member_record(record: dict, m: int) -> dict:
    """Member ``m``'s view of one epoch's record of the fit loop (per-member lists -> values)."""
    return {k: (v[m] if isinstance(v, list) else v) for k, v in record.items() if k != "active"}


def jit_epoch(epoch: Callable, max_traces: int = 1) -> Callable:
    """``jax.jit(epoch, donate_argnums=0)`` of a one-member epoch that fails loudly if it is ever
    traced twice (its own counter, :func:`jaxrec.train.parallel.max_traces`)."""
    return jax.jit(_max_traces(epoch, max_traces), donate_argnums=0)


def fit(
    engine: Engine,
    state,
    data,
    *,
    epochs: int,
    valid=None,
    eval_every: int = 1,
    tracker: Tracker | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, Any, Tracker, dict], None] | None = None,
    start_epoch: int = 0,
    raise_on_failure: bool | None = None,
) -> MembersFit:
    """Train ``engine``'s members for ``epochs`` epochs (from ``start_epoch``).

    Args:
      state: stacked states, ``[M, ...]`` leaves (``M = engine.n``).
      data: the training data, shared or stacked as the engine was built.
      valid: the validation data handed to the engine's ``validate`` (shared by the members).
      eval_every: validate every N epochs and at the last epoch (when the engine validates).
      tracker: resume the per-member bookkeeping (a restored checkpoint); default fresh.
      on_epoch_end: ``f(epoch, state, tracker, record)`` after each epoch (checkpoints).
      raise_on_failure: raise :class:`NonFiniteLossError` when a member diverges (default: for a
        single member, where there is nothing left to train); otherwise it is frozen and marked.
    Stops early when no member is active (all stopped or failed).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if epochs < 0:
        raise JaxrecError(f"epochs must be >= 0, got {epochs}")
    n = engine.n
    raise_on_failure = n == 1 if raise_on_failure is None else raise_on_failure
    if tracker is None:
        tracker = init_tracker(engine.keep(state), n, engine.validate is not None, start_epoch)
    state, tracker, data, valid = engine.place(state, tracker, data, valid)
    history: list[dict] = []
    end = start_epoch + epochs
    columns = [
        TextColumn(f"[bold]{'' if n == 1 else f'{n} members '}epoch {{task.completed}}/{{task.total}}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[valid]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("train", total=end, completed=start_epoch, loss="-", valid="")
        for epoch in range(start_epoch + 1, end + 1):
            t0 = time.perf_counter()
            state, tracker, metrics = engine.epoch(state, tracker, data, epoch)
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - t0
            failed = np.asarray(jax.device_get(tracker.failed_epoch)) == epoch
            if raise_on_failure and failed.any():
                m = int(np.flatnonzero(failed)[0])
                loss = float(metrics[engine.loss_key][m])
                raise NonFiniteLossError(
                    f"epoch {epoch}: the training loss is {loss}; stopped (lower the learning rate "
                    "or check the data); the last good state is the previous epoch's"
                    + (f" (member {m})" if n > 1 else "")
                )
            record = {"epoch": epoch, "seconds": seconds}
            record.update({k: [float(x) for x in v] for k, v in metrics.items() if k != "active"})
            record["active"] = [bool(a) and not f for a, f in zip(metrics["active"], failed)]
            evaluate_now = epoch % max(eval_every, 1) == 0 or epoch == end
            if engine.validate is not None and evaluate_now and any(record["active"]):
                tracker, scores = engine.validate(state, tracker, data, valid, epoch)
                record.update({f"valid/{k}": [float(x) for x in v] for k, v in jax.device_get(scores).items()})
            history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(epoch, state, tracker, record)
            live = [x for x, a in zip(record[engine.loss_key], record["active"]) if a]
            shown = _best_line(tracker) if engine.validate is not None else ""
            bar.update(task, completed=epoch, loss=f"{np.mean(live):.4f}" if live else "-", valid=shown)
            if not bool(np.any(jax.device_get(tracker.active))):
                break
    secs = [h["seconds"] for h in history]
    compile_s = secs[0] - float(np.median(secs[1:])) if len(secs) > 1 else float("nan")
    return MembersFit(state, tracker, history, engine.keep, compile_s)


def _best_line(tracker: Tracker) -> str:
    best = np.asarray(jax.device_get(tracker.best_score))
    best = best[np.isfinite(best)]
    if best.size == 0:
        return ""
    return f"best valid {best.max():.4f}" if best.size == 1 else f"best valid {best.min():.4f}..{best.max():.4f}"
