"""Compiled programs keyed by what they compile.

A training's programs (the member engine's epoch and validation, :mod:`jaxrec.train.engine`) are
traced from a handful of values: the model (a hashable Flax module: its sizes, layers, kernel,
dtype), the loss and its structural switches, the batching, the member count, the shapes of the
data and the validation settings. :class:`EpochSpec` and :class:`ProgramKey` hold exactly those;
the engine of a key is built once per process and reused by every later run, sweep group, study
victim and test with the same key -- whatever else their configs say (epochs, data path, names,
the eval cut-offs when nothing validates, the GAN or attack sections).

The other compiled programs of the package are keyed the same way where they are built: the
evaluators by (model, cut-offs, shapes) (:func:`jaxrec.evaluate.compile_evaluator`), the GAN's
engine by its :class:`~jaxrec.adversarial.gan_spec.GANSpec` (:func:`jaxrec.adversarial.gan_training.gan_engine`),
the perturbation and target-item rankings by their static arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable

import jax
import numpy as np

from jaxrec.adversarial.apr import make_apr_loss
from jaxrec.adversarial.substitution import with_neighbours
from jaxrec.adversarial.windows import window_objective
from jaxrec.models.sequential import is_sequential
from jaxrec.train.engine import Engine, make_engine
from jaxrec.train.rowwise import RowWise
from jaxrec.train.sequence import make_sequence_epoch, make_sequence_loss_fn
from jaxrec.train.state import adam
from jaxrec.train.steps import make_epoch, make_loss_fn, make_train_step, view_model


@dataclasses.dataclass(frozen=True)
class EpochSpec:
    """Everything a one-member epoch's trace depends on (hashable).

    Attributes:
      model: the Recommender module; loss: ``bpr`` | ``bce``; with_l2: the L2 term is computed
      (some member has ``train.l2 > 0``); adv: ``adv.method``; adv_relative, adv_perturb:
      APR's strength unit and perturbation; batch: pairs per step; n_negatives, sampling: the
      negatives; skip_empty: padding-only batches are no steps (members with their own data);
      optimizer: the optax value of ``train.optimizer`` (:func:`jaxrec.experiment.settings.optimizer`:
      :func:`jaxrec.train.state.adam` or a :class:`~jaxrec.train.rowwise.RowWise`), hashable: equal
      settings share a program, different ones never do;
      adv_at: ``adv.perturb_at``.
    """

    model: Hashable
    loss: str
    with_l2: bool
    adv: str
    adv_relative: bool
    adv_perturb: str
    batch: int
    n_negatives: int
    sampling: str
    skip_empty: bool
    optimizer: Hashable = dataclasses.field(default_factory=adam)
    adv_at: str = "tables"
    widths: tuple = ()  #: sequence models: the length buckets' widths
    caps: tuple = ()  #: sequence models: the buckets' capacities (rows)
    beta: float = 1.0  #: gbce's calibration exponent
    window_adversary: Hashable = None  #: sequence models with adv: :class:`~jaxrec.adversarial.windows.WindowAdversary`


def make_step_fn(spec: EpochSpec) -> Callable:
    """The unjitted one-member ``step(state, batch, data)`` of ``spec``.

    A row-wise optimizer (a :class:`~jaxrec.train.rowwise.RowWise` value) on a row-local model
    (``model.row_local``) trains through the step's row view: the loss is built on the model
    cloned to the view's sizes."""
    model = spec.model
    if is_sequential(model):
        objective = None if spec.adv == "none" else window_objective(model, spec.window_adversary)
        loss_fn = make_sequence_loss_fn(model, spec.loss, spec.widths, spec.beta, objective)
        return make_train_step(loss_fn, skip_empty=spec.skip_empty)
    rows = isinstance(spec.optimizer, RowWise) and getattr(model, "row_local", False)
    if rows:
        model = view_model(model, spec.batch, spec.n_negatives)
    if spec.adv != "none":
        loss_fn = make_apr_loss(
            model,
            spec.loss,
            spec.with_l2,
            relative=spec.adv_relative,
            method=spec.adv_perturb,
            vat=spec.adv == "vat",
            at=spec.adv_at,
        )
    else:
        loss_fn = make_loss_fn(model, spec.loss, with_l2=spec.with_l2)
    return make_train_step(loss_fn, skip_empty=spec.skip_empty, rows=rows)


def make_epoch_fn(spec: EpochSpec) -> Callable:
    """The unjitted one-member ``epoch(state, data)`` of ``spec`` (the engine vmaps and jits it)."""
    if is_sequential(spec.model):
        n_neg = spec.n_negatives if spec.loss != "ce" and spec.model.objective == "next" else 0
        epoch = make_sequence_epoch(make_step_fn(spec), spec.batch, spec.caps, n_neg)
        if spec.adv == "dirichlet":  # the neighbour table, rebuilt inside the compiled epoch
            epoch = with_neighbours(epoch, spec.model, sum(spec.caps) // spec.batch, spec.window_adversary)
        return epoch
    return make_epoch(make_step_fn(spec), spec.batch, spec.n_negatives, spec.sampling)


@dataclasses.dataclass(frozen=True)
class ProgramKey:
    """The key of a member engine: the epoch, the member count and layout, the data shapes, the
    validation settings (None: no validation) and the mesh shape (None: one device)."""

    epoch: EpochSpec
    members: int
    data_batched: bool
    shapes: tuple
    validation: tuple | None
    mesh: tuple | None
    loop: str = "vmap"  #: how the epoch runs the members (:func:`jaxrec.train.engine.over_members`)


def member_loop(setting: str, state, n: int, mesh=None) -> str:
    """``parallel.member_loop`` resolved: ``auto`` is ``map`` on a CPU when one member's state
    (params and optimizer state) exceeds :data:`CACHE_BYTES` -- ``n`` members' tables then no
    longer stay in cache together, and vmapped members run up to 2x slower than separate runs --
    and ``vmap`` otherwise (accelerators, small members, a mesh)."""
    if setting != "auto":
        return setting
    if n == 1 or mesh is not None or jax.default_backend() != "cpu":
        return "vmap"
    per_member = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((state.params, state.opt_state))) // n
    return "map" if per_member > CACHE_BYTES else "vmap"


CACHE_BYTES = 1 << 18  #: a member larger than this runs ``map``ped on a CPU (``member_loop: auto``)


def shapes_of(tree) -> tuple:
    """The structure and leaf shapes of an array pytree (part of a :class:`ProgramKey`)."""
    shapes = jax.tree.map(np.shape, tree)
    return (jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))


_ENGINES: dict[ProgramKey, Engine] = {}
BUILT = [0]  #: engines built in this process (each one compiles its programs once)
_LIMIT = 32  #: engines kept (the oldest is dropped beyond it)


def engine(key: ProgramKey, validate: Callable | None = None, monitor: str = "recall@20", patience=None, mesh=None):
    """The member engine of ``key``, built once per process (``validate``, ``monitor``,
    ``patience`` and ``mesh`` must be what ``key.validation`` / ``key.mesh`` describe)."""
    found = _ENGINES.get(key)
    if found is None:
        found = make_engine(
            make_epoch_fn(key.epoch),
            key.members,
            data_batched=key.data_batched,
            validate=validate,
            monitor=monitor,
            patience=patience,
            mesh=mesh,
            loop=key.loop,
        )
        _ENGINES[key] = found
        BUILT[0] += 1
        if len(_ENGINES) > _LIMIT:
            _ENGINES.pop(next(iter(_ENGINES)))
    return found
