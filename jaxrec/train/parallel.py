"""Sharding over a device mesh (and hosts): the layouts the member engine compiles for.

This is what ``pmap`` did, written the current way: a :class:`jax.sharding.Mesh` over the
visible devices with a ``member``, a ``data`` and a ``model`` axis, ``jax.jit`` with input and
output shardings (:mod:`jaxrec.train.engine` compiles every epoch that way when given a mesh), and
XLA's SPMD partitioner inserting the collectives (the all-reduce of the gradients of replicated
parameters) -- no ``pmean`` anywhere.

* **Members** (stacked trainings, leading axis) are split along ``member``; they never
  communicate (:func:`member_shardings`).
* **Batches** are split along ``data``: an epoch's ``[n_batches, B, ...]`` batch arrays are
  constrained to ``P(None, "data", ...)`` by :func:`constrain_batches`, which
  :func:`jaxrec.train.steps.epoch_batches` calls (a no-op when no mesh is set, so the
  single-device path is unchanged). ``B`` must divide by the ``data`` axis size.
* **Parameters and optimizer state** are replicated within a member, except that with a
  ``model`` axis of size > 1 every embedding table (``params["params"]["embeddings"][name]``,
  ``[M, rows, dim]``, and the optimizer state mirroring it: Adam's moments, a row-wise
  optimizer's ``[M, rows]`` accumulators) is sharded along its rows, for
  catalogues too large for one device.
* **Training data** (pairs, positive sets, model inputs) is replicated (or split along
  ``member`` when members train on different data variants).

Randomness is ``fold_in(state.key, state.step)`` and JAX's threefry is partitionable, so the
same seed gives the same run on 1 and N devices up to the reduction order of float sums.

Multi-host: call :func:`initialize_distributed` (``jaxrec train --distributed``) before anything
touches a device; the mesh then spans every process's devices and the code above is unchanged.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrec.errors import JaxrecError

MEMBER_AXIS = "member"  #: mesh axis along which stacked members are split (they never talk)
DATA_AXIS = "data"  #: mesh axis along which batches are split
MODEL_AXIS = "model"  #: mesh axis along which embedding rows are split
_EMBEDDINGS = "embeddings"  #: jaxrec.models.base.EMBEDDINGS (not imported: no model import here)


def max_traces(fn: Callable, n: int | None = 1) -> Callable:
    """``fn`` that raises ``AssertionError`` when traced more than ``n`` times (None: no limit).

    Like ``chex.assert_max_traces``, but the counter belongs to this wrapper: chex keys its
    counter on the caller's stack of function names and ``fn``'s source, so two epochs built
    by the same code (two runs from one test, two sweep members) would share one counter. The
    count is ``wrapper.traces()``.
    """
    count = [0]

    @functools.wraps(fn)  # keeps fn's signature: jit names the arguments after it
    def counted(*args, **kwargs):
        count[0] += 1
        if n is not None and count[0] > n:
            raise AssertionError(
                f"{getattr(fn, '__name__', 'function')} traced {count[0]} times (max {n}): the "
                "shapes, dtypes or shardings of its arguments changed between calls (a recompilation)"
            )
        return fn(*args, **kwargs)

    counted.traces = lambda: count[0]
    return counted


def make_mesh(data: int = 0, model: int = 1, devices: Sequence[Any] | None = None, member: int = 1) -> Mesh:
    """A ``(member, data, model)`` mesh with Auto axis types over ``devices`` (default: all).

    Args:
      data: devices on the ``data`` axis; 0 means ``len(devices) // (model * member)``.
      model: devices on the ``model`` axis (embedding rows are sharded over it when > 1).
      member: devices on the ``member`` axis (stacked members are split over it).
    Raises:
      JaxrecError: when ``data * model`` does not equal the number of devices used.
    """
    devices = list(jax.devices() if devices is None else devices)
    if model < 1 or data < 0 or member < 1:
        raise JaxrecError(
            f"mesh axes: model and member must be >= 1 and data >= 0, got data={data}, model={model}, member={member}"
        )
    if data == 0:
        if len(devices) % (model * member):
            raise JaxrecError(
                f"model={model} x member={member} devices do not divide the {len(devices)} visible devices"
            )
        data = len(devices) // (model * member)
    used = member * data * model
    if used > len(devices):
        raise JaxrecError(
            f"a mesh of member={member} x data={data} x model={model} needs {used} "
            f"devices, but only {len(devices)} are visible ({jax.default_backend()})"
        )
    if used < len(devices) and jax.process_count() > 1:
        raise JaxrecError(
            f"member x data x model = {used} must use all {len(devices)} devices "
            "of a multi-process run (data=0 takes all of them)"
        )
    return jax.make_mesh(
        (member, data, model),
        (MEMBER_AXIS, DATA_AXIS, MODEL_AXIS),
        axis_types=(AxisType.Auto,) * 3,
        devices=devices[:used],
    )


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise :class:`JaxrecError` unless ``batch_size`` divides by the ``data`` axis size."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise JaxrecError(
            f"batch size {batch_size} must be divisible by the {n} devices of the "
            f"'{DATA_AXIS}' mesh axis (e.g. {math.ceil(batch_size / n) * n})"
        )


def constrain_batches(batches):
    """Split an epoch's ``[n_batches, B, ...]`` batch arrays along ``B`` over the ``data`` axis.

    Call it inside jitted code. Under a mesh set with ``jax.set_mesh`` (as the member engine
    does, :mod:`jaxrec.train.engine`) every leaf gets ``with_sharding_constraint(P(None, "data",
    None, ...))``; without a mesh, or one without a ``data`` axis, the batches are returned
    unchanged (no cost).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or DATA_AXIS not in mesh.axis_names:
        return batches

    def constrain(x):
        if x.ndim < 2:
            return x
        return jax.lax.with_sharding_constraint(x, P(None, DATA_AXIS, *([None] * (x.ndim - 2))))

    return jax.tree.map(constrain, batches)


def _is_embedding_path(path) -> bool:
    return any(getattr(k, "key", None) == _EMBEDDINGS for k in path)


def member_shardings(tree, mesh: Mesh, batched: bool = True):
    """Shardings for a pytree with a leading member axis: that axis split over ``member``, and
    embedding tables' rows (and their optimizer moments) over ``model``; ``batched=False``: the
    tree has no member axis and is replicated (data shared by all members)."""
    if not batched:
        return jax.tree.map(lambda _: NamedSharding(mesh, P()), tree)
    n_model = mesh.shape.get(MODEL_AXIS, 1)
    n_member = mesh.shape.get(MEMBER_AXIS, 1)

    def pick(path, leaf):
        shape = getattr(leaf, "shape", ())
        if not shape:
            return NamedSharding(mesh, P())
        if shape[0] % n_member:
            raise JaxrecError(
                f"the {n_member} devices of the 'member' axis must divide the number of members ({shape[0]})"
            )
        if n_model > 1 and _is_embedding_path(path) and len(shape) in (2, 3):  # [M, rows(, dim)]
            if shape[1] % n_model:
                name = getattr(path[-1], "key", path[-1])
                raise JaxrecError(
                    f"model axis of {n_model}: embedding table {name!r} has {shape[1]} rows, "
                    "not divisible by the 'model' axis size (choose a divisor of every table's rows)"
                )
            return NamedSharding(mesh, P(MEMBER_AXIS, MODEL_AXIS, *([None] * (len(shape) - 2))))
        return NamedSharding(mesh, P(MEMBER_AXIS))

    return jax.tree_util.tree_map_with_path(pick, tree)


def place_members(tree, mesh: Mesh | None, batched: bool = True):
    """``tree`` placed with :func:`member_shardings` (unchanged without a mesh)."""
    if mesh is None:
        return tree
    return _put(tree, member_shardings(tree, mesh, batched))


def wrap_key(data: jax.Array, impl: Any, sharding=None) -> jax.Array:
    """A typed key from its raw ``key_data``, placed with ``sharding`` (None: default placement).

    Typed keys cannot be ``device_put`` onto a mesh directly; their raw data can, and is wrapped
    inside a jitted function whose output carries the sharding.
    """
    return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl), out_shardings=sharding)(data)


def _put(tree, shardings):
    """``device_put`` each leaf onto its sharding (multi-host: every process passes the same value)."""

    def put(x, s):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return wrap_key(jax.device_put(np.asarray(jax.random.key_data(x)), s), jax.random.key_impl(x), s)
        if isinstance(x, jax.Array) and x.is_fully_addressable:
            x = np.asarray(x)
        return jax.device_put(x, s)

    return jax.tree.map(put, tree, shardings)


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """``jax.distributed.initialize`` from flags or the environment; call before touching devices.

    Each argument falls back to ``JAXREC_COORDINATOR`` / ``JAXREC_NUM_PROCESSES`` /
    ``JAXREC_PROCESS_ID``; when all are unset, JAX auto-detects the cluster (SLURM, Open MPI,
    Cloud TPU). CPU processes exchange collectives through gloo.
    """
    env = os.environ
    coordinator = coordinator or env.get("JAXREC_COORDINATOR")
    try:
        if num_processes is None and env.get("JAXREC_NUM_PROCESSES"):
            num_processes = int(env["JAXREC_NUM_PROCESSES"])
        if process_id is None and env.get("JAXREC_PROCESS_ID"):
            process_id = int(env["JAXREC_PROCESS_ID"])
    except ValueError as e:
        raise JaxrecError(f"JAXREC_NUM_PROCESSES / JAXREC_PROCESS_ID must be integers: {e}") from None
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise JaxrecError(
            "--distributed needs --coordinator, --num-processes and --process-id together "
            f"(got coordinator={coordinator}, num_processes={num_processes}, process_id={process_id})"
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise JaxrecError(f"--process-id={process_id} must be in [0, --num-processes={num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def mesh_from_config(data: int = 1, model: int = 1, member: int = 1) -> Mesh | None:
    """The mesh ``member x data x model`` asks for; None for the plain 1-device path.

    A multi-process run always gets a mesh (over every process's devices, ``data = 0``
    meaning all of them).
    """
    if data == 1 and model == 1 and member == 1 and jax.process_count() == 1:
        return None
    if jax.process_count() > 1 and data == 1:
        data = 0
    return make_mesh(data, model, member=member)


def host_tree(tree):
    """Every leaf of a (possibly multi-host) pytree as a host numpy array, identical on all processes."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
