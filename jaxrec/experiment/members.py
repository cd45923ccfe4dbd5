"""What the members of one program train: the member keys, the structure that groups configs into
programs, and :func:`build_training` -- one stacked state, the data and the epoch of a list of
configurations (the setup half of :mod:`jaxrec.experiment.training`)."""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp

from jaxrec.config import Config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.sampling import search_depth
from jaxrec.errors import JaxrecError
from jaxrec.experiment.checkpoints import warm_start
from jaxrec.experiment.models import build_model
from jaxrec.experiment.programs import EpochSpec, make_epoch_fn
from jaxrec.experiment.sequences import sequence_state_hparams, sequence_training
from jaxrec.experiment.settings import check_train, optimizer
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.train.state import create_members
from jaxrec.train.steps import stack_data, train_data

_MODELS: dict = {}  #: one module instance per equal module

#: config keys whose values may differ between the members of one compiled program
MEMBER_KEYS = ("train.seed", "train.lr", "train.l2", "adv.eps", "adv.reg", "adv.start_epoch", "adv.vat_lambda")


def _get(cfg: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def structure(cfg: Config) -> Config:
    """``cfg`` with the member keys at their defaults: configs with equal structure train as
    members of one program."""
    defaults = Config()
    out = cfg
    for key in MEMBER_KEYS:
        section, name = key.split(".")
        sec = dataclasses.replace(getattr(out, section), **{name: _get(defaults, key)})
        out = dataclasses.replace(out, **{section: sec})
    return dataclasses.replace(out, name=defaults.name, output_dir=defaults.output_dir)


@dataclasses.dataclass
class Training:
    """What a list of member configurations trains: the module, its non-trainable inputs, the
    stacked initial state (``[M, ...]`` leaves), the training data (an array pytree shared by the
    members) and the *unjitted* one-member ``epoch(state, data)`` (hand it to
    :func:`jaxrec.train.engine.make_engine`, or jit one member with
    :func:`jaxrec.train.loop.jit_epoch`)."""

    model: object
    inputs: dict
    state: object
    data: object
    spec: EpochSpec  #: what the epoch's trace depends on (the key of its compiled programs)
    configs: list
    data_batched: bool = False  #: members train on their own data variants (``data`` and
    #: ``inputs`` have a leading member axis)

    @property
    def epoch(self):
        """The unjitted one-member ``epoch(state, data)``."""
        return make_epoch_fn(self.spec)

    @property
    def batch_size(self) -> int:
        """Pairs per step (``train.batch_size``, or all the pairs when it is larger)."""
        return self.spec.batch


def build_training(
    cfgs: Config | list[Config],
    split: Split,
    trains: list[Interactions] | None = None,
    capacity: int | dict | None = None,
) -> Training:
    """Model, stacked state, data and epoch function for the member configurations ``cfgs``
    (one :class:`Config` = one member) on ``split`` -- the setup of
    :func:`jaxrec.experiment.training.train_members`, shared with the benchmarks so that they
    measure exactly what ``jaxrec train`` / ``sweep`` run.

    ``trains``: one training set per member (data variants in ``split``'s id space, e.g.
    :mod:`jaxrec.robustness.data_noise`) instead of ``split.train``; they are padded to one
    capacity (pairs, positive sets, graph edges) and stacked, so the members still run as one
    program. ``capacity``: pad them to this many pairs and to ``split.train``'s positive-set
    depth instead of their own largest (subsets of ``split.train`` in several calls then share
    one shape, so one compiled program: :mod:`~jaxrec.experiment.studies.certify`); for a sequence
    model, the shape dict of :func:`~jaxrec.train.sequence.sequence_shape` instead."""
    cfgs = [cfgs] if isinstance(cfgs, Config) else list(cfgs)
    if not cfgs:
        raise JaxrecError("no member configurations to train")
    shape = structure(cfgs[0])
    for c in cfgs[1:]:
        if structure(c) != shape:
            raise JaxrecError(
                f"members of one program may differ only in {', '.join(MEMBER_KEYS)} (a model, data "
                "or structural setting differs)"
            )
    base = cfgs[0]
    for c in cfgs:
        check_train(c)
    t_cfg, a_cfg = base.train, base.adv
    alpha = t_cfg.popularity_alpha if t_cfg.negative_sampling == "popularity" else None
    batched = trains is not None and len(cfgs) > 1
    if trains is not None and len(trains) != len(cfgs):
        raise JaxrecError(f"{len(trains)} training sets for {len(cfgs)} members: give one per member")
    batch = t_cfg.batch_size
    n_pairs = max(len(t) for t in (trains or [split.train]))
    if batch > n_pairs:  # a batch is padded to its size: 1e8 would allocate gigabytes for nothing
        print(
            f"note: train.batch_size={batch} is more than the {n_pairs} training pairs; using {n_pairs} "
            "(one batch per epoch)",
            file=sys.stderr,
        )
        batch = n_pairs
    padded = trains is not None and (batched or capacity is not None)
    seq_extra = {}
    if is_sequential(MODELS[base.model.name]):
        shape = capacity if isinstance(capacity, dict) else None
        model, inputs, data, seq_extra, steps, real_steps = sequence_training(cfgs, split, trains, shape)
        batch, padded = base.train.batch_size, batched or shape is not None  # padding batches are skipped
    elif not padded:
        train = split.train if trains is None else trains[0]
        model, inputs = build_model(base.model, train)
        data = train_data(train, batch, inputs, alpha)
    else:  # data variants in one shape (or one member alone in the shape of the chunks it is compared with)
        for t in trains:
            if (t.n_users, t.n_items) != (split.n_users, split.n_items):
                raise JaxrecError(f"{t.source}: a data variant must keep the split's id space")
        cap = max(len(t) for t in trains)
        steps = max(search_depth(t) for t in trains)
        if capacity is not None:
            if capacity < cap:
                raise JaxrecError(f"a data variant has {cap} training pairs, more than the capacity {capacity}")
            cap, steps = capacity, max(steps, search_depth(split.train))
        built = [build_model(base.model, t, capacity=cap) for t in trains]
        model, inputs = built[0]
        datas = [train_data(t, batch, i, alpha, capacity=cap, search_steps=steps) for t, (_, i) in zip(trains, built)]
        data = stack_data(datas) if batched else datas[0]
    model = _MODELS.setdefault(model, model)  # equal modules -> one instance (its apply is static state)
    seeds = jnp.asarray([c.train.seed for c in cfgs], jnp.uint32)
    keys = jax.vmap(jax.random.key)(seeds)
    if not seq_extra:
        steps = data.n_pairs // batch
    tx = optimizer(t_cfg, steps)  # train.optimizer, once, as a value
    l2 = [c.train.l2 for c in cfgs]
    hparams = {"l2": l2}
    with_l2 = any(v != 0 for v in l2)
    if a_cfg.method != "none":
        if seq_extra:  # every batch with a real window is a step
            per_epoch = real_steps
            hparams.update(sequence_state_hparams(cfgs, split.n_items))
        else:  # optimizer steps per epoch: whole batches of each member's real pairs (empty ones are skipped)
            sizes = [len(t) for t in trains] if padded else [data.n_pairs] * len(cfgs)
            per_epoch = [-(-n // batch) for n in sizes]
        hparams.update(
            eps=[c.adv.eps for c in cfgs],
            reg=[c.adv.reg for c in cfgs],
            start_step=[c.adv.start_epoch * s for c, s in zip(cfgs, per_epoch)],
        )
        if a_cfg.method == "vat":
            hparams["vat_lambda"] = [c.adv.vat_lambda for c in cfgs]
    state = create_members(model, keys, tx, inputs, hparams, [c.train.lr for c in cfgs])
    if t_cfg.init_from:
        state = state.replace(params=warm_start(t_cfg.init_from, state.params, len(cfgs)))
    spec = EpochSpec(
        model,
        t_cfg.loss,
        with_l2,
        a_cfg.method,
        a_cfg.relative,
        a_cfg.perturb,
        batch,
        t_cfg.n_negatives,
        t_cfg.negative_sampling,
        skip_empty=padded,  # a variant's padding batches are no steps
        optimizer=tx,
        adv_at=a_cfg.perturb_at,
        **seq_extra,
    )
    return Training(model, data.inputs if batched else inputs, state, data, spec, cfgs, batched)
