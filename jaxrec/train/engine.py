"""The member engine: one compiled program trains and validates ``M`` members at once.

A *member* is one training: its state (params, optimizer state with its learning rate, step,
key, the loss's hyperparameters) and, when members differ in data, its own data variant of a
shared shape. Members are stacked along a leading axis and every program here is
``jax.vmap`` of the one-member function (``M == 1`` calls it directly, so a single run is not
batched). Members never communicate, so the member axis also shards over a mesh axis of its own
(:data:`jaxrec.train.parallel.MEMBER_AXIS`).

Per member, on device (:class:`Tracker`):

* **non-finite losses**: a member whose epoch loss is NaN/inf keeps its last good state and is
  marked ``failed``; the others go on;
* **validation, best parameters and early stopping**: ``validate(kept, data, valid) -> {metric:
  []}`` (a pure function handed in by the caller -- ``train/`` does not import the evaluator)
  scores each member's kept pytree (its params) on the validation data ``valid``; the best
  epoch's copy is kept per member and a member stops after ``patience`` evaluations without
  improvement, each on its own schedule.

The host loop (:func:`jaxrec.train.loop.fit`) only reads ``[M]`` vectors back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrec.errors import JaxrecError
from jaxrec.train.parallel import MEMBER_AXIS, max_traces, member_shardings, place_members


@struct.dataclass
class Tracker:
    """Per-member bookkeeping, ``[M]`` arrays (and ``best``, a stacked pytree or None).

    Attributes:
      best: each member's kept pytree (params) at its best validation epoch; None without
        validation (the final params are the result then).
      best_score: ``[M]`` float32, the best monitored validation score (``-inf`` before any).
      best_epoch: ``[M]`` int32, 1-based epoch of ``best`` (the last trained epoch without
        validation).
      bad_evals: ``[M]`` int32, evaluations since the last improvement.
      stopped: ``[M]`` bool, stopped early (patience exhausted).
      failed: ``[M]`` bool, a non-finite loss froze the member.
      failed_epoch: ``[M]`` int32, the epoch that diverged (0: none).
      epochs: ``[M]`` int32, epochs actually trained (frozen members stop counting).
    """

    best: Any
    best_score: jax.Array
    best_epoch: jax.Array
    bad_evals: jax.Array
    stopped: jax.Array
    failed: jax.Array
    failed_epoch: jax.Array
    epochs: jax.Array

    @property
    def active(self) -> jax.Array:
        return ~(self.stopped | self.failed)


def init_tracker(kept, n: int, keep_best: bool, start_epoch: int = 0) -> Tracker:
    """A fresh :class:`Tracker` for ``n`` members; ``kept`` is the stacked pytree to keep."""
    ints = lambda v: jnp.full((n,), v, jnp.int32)  # noqa: E731  (one buffer each: donated)
    return Tracker(
        best=jax.tree.map(jnp.copy, kept) if keep_best else None,
        best_score=jnp.full((n,), -jnp.inf, jnp.float32),
        best_epoch=ints(start_epoch),
        bad_evals=ints(0),
        stopped=jnp.zeros((n,), bool),
        failed=jnp.zeros((n,), bool),
        failed_epoch=ints(0),
        epochs=ints(start_epoch),
    )


LOOPS = ("vmap", "map")  #: how one program runs its members (:func:`over_members`)


def over_members(fn: Callable, n: int, in_axes, sharded: bool = False, loop: str = "vmap") -> Callable:
    """``fn`` over a leading member axis.

    ``loop="vmap"``: ``jax.vmap`` -- every operation batched over the members (what an
    accelerator wants). ``loop="map"``: ``lax.map`` -- the members one after the other inside the
    one program, each with its own working set (on a CPU whose caches hold one member's tables
    but not ``n`` of them, this is as fast as separate runs, where vmap is up to 2x slower:
    docs/speed.md). For ``n == 1`` the member axis is dropped, ``fn`` runs unbatched and the axis
    is put back (a single run is exactly the unbatched program). ``sharded``: sharding
    constraints inside ``fn`` (the batches' ``data`` axis) place the member dimension on the
    ``member`` mesh axis (vmap only)."""
    if loop not in LOOPS:
        raise JaxrecError(f"unknown member loop {loop!r}; choose one of {LOOPS}")
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,)
    if n > 1 and loop == "map" and not sharded:

        def mapped(*args):
            def body(xs):
                it = iter(xs)
                return fn(*[next(it) if ax is not None else a for a, ax in zip(args, axes)])

            return jax.lax.map(body, [a for a, ax in zip(args, axes) if ax is not None])

        return mapped
    if n > 1:
        return jax.vmap(fn, in_axes=in_axes, spmd_axis_name=MEMBER_AXIS if sharded else None)

    def one(*args):
        args = [a if ax is None else jax.tree.map(lambda x: x[0], a) for a, ax in zip(args, axes)]
        return jax.tree.map(lambda x: jnp.expand_dims(x, 0), fn(*args))

    return one


def _where(mask: jax.Array, new, old):
    """Per member (leading axis), ``new`` where ``mask`` else ``old``."""

    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)

    return jax.tree.map(pick, new, old)


def epoch_mean(metrics: dict) -> dict:
    """``{name: [M, n_steps]}`` -> ``{name: [M]}``: the mean over the steps that updated
    (``metrics["batch"]`` marks them; every step counts when it is absent)."""
    w = metrics.get("batch")
    out = {}
    for k, v in metrics.items():
        if k == "batch":
            continue
        v = v.reshape(v.shape[:2] + (-1,)).mean(-1) if v.ndim > 2 else v
        out[k] = jnp.mean(v, -1) if w is None else jnp.sum(v * w, -1) / jnp.maximum(jnp.sum(w, -1), 1.0)
    return out


@dataclasses.dataclass
class Engine:
    """The compiled programs of one set of members (see the module docstring).

    Build with :func:`make_engine`. ``epoch(state, tracker, data, epoch_no) -> (state, tracker,
    metrics {name: [M]})`` trains every active member one epoch (state and tracker donated);
    ``validate(state, tracker, data, valid, epoch_no) -> (tracker, scores {metric: [M]})``
    validates them.
    """

    n: int
    epoch: Callable
    validate: Callable | None
    keep: Callable
    loss_key: str
    mesh: Any = None
    data_batched: bool = False
    loop: str = "vmap"  #: how the epoch runs its members (:func:`over_members`)

    def traces(self) -> int:
        return self.epoch.traces()

    def place(self, state, tracker: Tracker, data, valid=None):
        """The arguments placed as the programs expect them (members split over the mesh's
        ``member`` axis, shared data replicated); unchanged without a mesh."""
        if self.mesh is None:
            return state, tracker, data, valid
        return (
            place_members(state, self.mesh),
            place_members(tracker, self.mesh),
            place_members(data, self.mesh, self.data_batched),
            None if valid is None else place_members(valid, self.mesh, False),
        )


def make_engine(
    epoch_fn: Callable,
    n: int,
    *,
    data_batched: bool = False,
    validate: Callable | None = None,
    monitor: str = "recall@20",
    patience: int | None = None,
    keep: Callable = lambda s: s.params,
    loss_key: str = "loss",
    mesh=None,
    n_traces: int | None = 1,
    loop: str = "vmap",
) -> Engine:
    """Compile the member programs for ``n`` members of the one-member ``epoch_fn``.

    Args:
      epoch_fn: ``epoch(state, data) -> (state, {name: [n_steps]})`` for one member (e.g.
        :func:`jaxrec.train.steps.make_epoch`, or the GAN's); a member diverges when any metric's
        epoch mean is not finite (``metrics[loss_key]`` is the one reported); ``metrics["batch"]``
        (optional) marks real steps.
      data_batched: the data has a leading member axis (members train on different variants).
      validate: ``validate(kept, data, valid) -> {metric: []}`` for one member's kept pytree, its
        training data (model inputs) and the shared validation data (pure); None: no
        validation. ``monitor`` names the metric maximised; ``patience`` evaluations without
        improvement stop a member (None: never).
      keep: ``state -> pytree`` kept as the result (the params).
      mesh: shard the member axis over its ``member`` mesh axis (and batches / embedding rows
        over ``data`` / ``model`` as :mod:`jaxrec.train.parallel` does); None: one device.
      n_traces: each program may be traced at most this often (a recompilation raises).
      loop: ``vmap`` | ``map``, how the epoch runs its members (:func:`over_members`; a mesh
        always vmaps). Validation always vmaps (its ranking is chunked for the member width).
    """
    if n < 1:
        raise JaxrecError(f"the number of members must be >= 1, got {n}")
    data_axis = 0 if data_batched else None
    run_epoch = over_members(epoch_fn, n, (0, data_axis), sharded=mesh is not None, loop=loop)

    def members_epoch(state, tracker: Tracker, data, epoch_no):
        new_state, metrics = run_epoch(state, data)
        means = epoch_mean(metrics)
        finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in means.values()]), axis=0)
        active = tracker.active
        adopt = active & finite
        diverged = active & ~finite
        tracker = tracker.replace(
            failed=tracker.failed | diverged,
            failed_epoch=jnp.where(diverged, epoch_no, tracker.failed_epoch),
            epochs=jnp.where(adopt, epoch_no, tracker.epochs),
        )
        if tracker.best is None:  # no validation: the result is the last trained epoch
            tracker = tracker.replace(best_epoch=tracker.epochs)
        return _where(adopt, new_state, state), tracker, {**means, "active": active.astype(jnp.float32)}

    members_validate = None
    if validate is not None:
        score = over_members(validate, n, (0, data_axis, None), sharded=mesh is not None)

        def members_validate(state, tracker: Tracker, data, valid, epoch_no):
            kept = keep(state)
            scores = score(kept, data, valid)
            if monitor not in scores:
                raise JaxrecError(f"monitor {monitor!r} is not among the validation metrics {sorted(scores)}")
            s = scores[monitor]
            active = tracker.active
            improved = active & (s > tracker.best_score)
            bad = jnp.where(improved, 0, jnp.where(active, tracker.bad_evals + 1, tracker.bad_evals))
            stopped = tracker.stopped
            if patience is not None:
                stopped = stopped | (active & (bad >= patience))
            tracker = tracker.replace(
                best=_where(improved, kept, tracker.best),
                best_score=jnp.where(improved, s, tracker.best_score),
                best_epoch=jnp.where(improved, epoch_no, tracker.best_epoch),
                bad_evals=bad,
                stopped=stopped,
            )
            return tracker, scores

    epoch_j = _jit(members_epoch, mesh, n_traces, donate=(0, 1), batched=(True, True, data_batched, False))
    valid_j = None
    if members_validate is not None:
        valid_j = _jit(members_validate, mesh, n_traces, donate=(1,), batched=(True, True, data_batched, False, False))
    return Engine(n, epoch_j, valid_j, keep, loss_key, mesh, data_batched, loop)


def _jit(fn: Callable, mesh, n_traces, donate, batched) -> Callable:
    """``jax.jit`` of ``fn`` (traced at most ``n_traces`` times); with a mesh, arguments marked
    ``batched`` are sharded along the member axis (:func:`member_shardings`), the others
    replicated, and the outputs keep the member sharding."""
    counted = max_traces(fn, n_traces)
    if mesh is None:
        jitted = jax.jit(counted, donate_argnums=donate)

        def call(*args):
            return jitted(*args)
    else:
        cache = {}

        def call(*args):
            if "fn" not in cache:
                in_sh = tuple(None if b is None else member_shardings(a, mesh, b) for a, b in zip(args, batched))
                out = jax.eval_shape(fn, *args)
                out_sh = member_shardings(out, mesh, True)
                cache["fn"] = jax.jit(counted, in_shardings=in_sh, out_shardings=out_sh, donate_argnums=donate)
            with jax.set_mesh(mesh):
                return cache["fn"](*args)

    call.traces = counted.traces
    return call
