"""The training loop: jitted scan epochs, periodic validation, early stopping, progress bar."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.errors import JaxrecError
from jaxrec.evaluate import METRICS, RankingData, evaluate
from jaxrec.train.parallel import max_traces as _max_traces
from jaxrec.train.state import TrainState
from jaxrec.train.steps import TrainData


class NonFiniteLossError(JaxrecError):
    """Training produced a NaN/inf loss; the message names the epoch."""


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the final train state.
      best_params: params of the best validation epoch (the final params without validation).
      history: one dict per epoch: ``epoch``, ``loss``, ``seconds``, and validation metrics
        (``valid/recall@20`` ...) on evaluated epochs.
      best_epoch: 1-based epoch of ``best_params``.
      compile_s: seconds of the first epoch minus the median of the others (compilation).
    """

    state: TrainState
    best_params: dict
    history: list[dict]
    best_epoch: int
    compile_s: float = float("nan")

    @property
    def epoch_seconds(self) -> list[float]:
        return [h["seconds"] for h in self.history]


def jit_epoch(epoch: Callable, max_traces: int = 1) -> Callable:
    """``jax.jit(epoch, donate_argnums=0)`` that fails loudly if it is ever traced twice.

    The trace counter belongs to this jitted epoch (:func:`jaxrec.train.parallel.max_traces`),
    so several runs built by the same code each get their own.
    """
    return jax.jit(_max_traces(epoch, max_traces), donate_argnums=0)


def fit(
    model,
    state: TrainState,
    data: TrainData,
    epoch_fn: Callable,
    epochs: int,
    valid: RankingData | None = None,
    eval_every: int = 1,
    ks: tuple[int, ...] = (20,),
    monitor: str = "recall@20",
    patience: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, TrainState, dict], None] | None = None,
    start_epoch: int = 0,
) -> FitResult:
    """Train for ``epochs`` epochs (from ``start_epoch``) with the compiled ``epoch_fn``.

    Args:
      epoch_fn: ``epoch(state, data) -> (state, metrics)``, already jitted (see :func:`jit_epoch`).
      valid: ranking data to validate on every ``eval_every`` epochs (None: no validation).
      monitor: validation metric to maximise for early stopping / best params.
      patience: stop after this many evaluations without improvement (None: never stop early).
      on_epoch_end: called as ``f(epoch, state, record)`` after each epoch (checkpointing hooks).
    Raises:
      NonFiniteLossError: when an epoch's mean loss is NaN or inf (the state of the last good
        epoch is what ``on_epoch_end`` saw last).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    history, best, best_epoch, bad_evals = [], -math.inf, start_epoch, 0
    best_params = state.params
    keep_best = valid is not None
    if keep_best:
        name, _, k = monitor.partition("@")
        if name not in METRICS or not k.isdigit():
            raise JaxrecError(f"train.monitor: {monitor!r} is not a ranking metric like 'recall@20'")
        ks = tuple(sorted(set(ks) | {int(k)}))
    columns = [
        TextColumn("[bold]epoch {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[valid]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("train", total=start_epoch + epochs, completed=start_epoch, loss="-", valid="")
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            t0 = time.perf_counter()
            new_state, metrics = epoch_fn(state, data)
            loss = float(jnp.mean(metrics["loss"]))
            seconds = time.perf_counter() - t0
            if not np.isfinite(loss):
                raise NonFiniteLossError(
                    f"epoch {epoch}: the training loss is {loss}; stopped (lower the learning rate "
                    "or check the data); the last good state is the previous epoch's"
                )
            state = new_state
            record = {"epoch": epoch, "loss": loss, "seconds": seconds}
            if keep_best and (epoch % eval_every == 0 or epoch == start_epoch + epochs):
                scores = evaluate(model, _with_inputs(state.params, data), valid, ks)
                record.update({f"valid/{k}": v for k, v in scores.items()})
                if scores[monitor] > best:
                    best, best_epoch, bad_evals = scores[monitor], epoch, 0
                    best_params = jax.tree.map(jnp.copy, state.params)  # survives donation
                else:
                    bad_evals += 1
            history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(epoch, state, record)
            shown = f"valid {monitor} {record[f'valid/{monitor}']:.4f}" if f"valid/{monitor}" in record else ""
            bar.update(task, completed=epoch, loss=f"{loss:.4f}", valid=shown or bar.tasks[0].fields["valid"])
            if patience is not None and keep_best and bad_evals >= patience:
                break
    if not keep_best:
        best_params, best_epoch = state.params, history[-1]["epoch"] if history else start_epoch
    secs = [h["seconds"] for h in history]
    compile_s = secs[0] - float(np.median(secs[1:])) if len(secs) > 1 else float("nan")
    return FitResult(state, best_params, history, best_epoch, compile_s)


def _with_inputs(params: dict, data: TrainData) -> dict:
    """The model's variables: trainable params plus its non-trainable inputs (e.g. a graph)."""
    return {**params, **data.inputs}
