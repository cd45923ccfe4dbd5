"""A training's settings checked and turned into plain values, before any work: every
``train`` / ``eval`` rule that spans fields (:func:`check_train`) and the optimizer
(:func:`optimizer`: ``train.optimizer`` with its betas, weight decay and schedule as one optax
value; the floors below receive the value and never read the name)."""

from __future__ import annotations

import optax

from jaxrec.adversarial import SEQUENCE_ONLY
from jaxrec.config import Config, validate
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import METRICS
from jaxrec.experiment.sequences import check_sequence
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.train.losses import LOSSES
from jaxrec.train.rowwise import KINDS, RowWise
from jaxrec.train.state import adam


def check_train(cfg: Config) -> None:
    validate(cfg)  # every value in range (sections check themselves when built: a cheap repeat)
    t_cfg = cfg.train
    name, _, k = t_cfg.monitor.partition("@")
    if name not in METRICS or not k.isdigit():
        raise JaxrecError(f"train.monitor: {t_cfg.monitor!r} is not a ranking metric like 'recall@20'")
    if is_sequential(MODELS[cfg.model.name]):
        check_sequence(cfg)
    elif t_cfg.loss not in LOSSES:
        raise JaxrecError(f"train.loss: {t_cfg.loss!r} is a sequence models' loss; choose one of {sorted(LOSSES)}")
    elif cfg.adv.method in SEQUENCE_ONLY:
        raise JaxrecError(
            f"adv.method: {cfg.adv.method} substitutes items in a history window, and {cfg.model.name} is not a "
            "sequence model; choose apr or vat"
        )
    if cfg.eval.protocol == "sampled" and cfg.data.split != "leave_one_out":
        raise JaxrecError(
            f"eval.protocol: sampled ranks each user's one held-out item against sampled items; data.split: "
            f"{cfg.data.split} holds out several (use leave_one_out)"
        )
    if len(t_cfg.betas) != 2:
        raise JaxrecError(f"train.betas: give Adam's two betas [b1, b2], got {list(t_cfg.betas)}")
    row_wise = t_cfg.optimizer in KINDS
    if row_wise and (t_cfg.weight_decay or t_cfg.schedule != "constant"):
        raise JaxrecError(
            f"train.optimizer: {t_cfg.optimizer} (row-wise) takes train.betas only; train.weight_decay and "
            "train.schedule are dense Adam's (use train.optimizer: adam)"
        )
    row_local = getattr(MODELS[cfg.model.name], "row_local", False)
    if cfg.adv.method != "none" and cfg.adv.relative and row_wise and row_local:
        raise JaxrecError(
            f"adv.relative: true needs each table's mean row norm, and train.optimizer: {t_cfg.optimizer} (row-wise) "
            "sees only the batch's rows; use adv.relative: false or train.optimizer: adam"
        )


def optimizer(t_cfg, steps_per_epoch: int) -> optax.GradientTransformation | RowWise:
    """``train.optimizer`` with its settings as one optax value (its learning rate is state:
    :func:`jaxrec.train.state.with_lr`): dense Adam (:func:`jaxrec.train.state.adam`, with
    ``train.betas``, ``weight_decay`` and ``schedule``) or a row-wise optimizer
    (:class:`jaxrec.train.rowwise.RowWise`, with ``train.betas``). Equal settings give equal
    (hashable) values, so the compiled-program cache (:class:`~jaxrec.experiment.programs.EpochSpec`)
    shares one engine between them and no other."""
    if t_cfg.optimizer in KINDS:
        b1, b2 = t_cfg.betas
        return RowWise(t_cfg.optimizer, b1, b2)
    return adam(*optimizer_settings(t_cfg, steps_per_epoch))


def optimizer_settings(t_cfg, steps_per_epoch: int) -> tuple:
    """:func:`jaxrec.train.state.adam`'s arguments from ``train.*`` (() for the defaults, so
    every default run shares one optimizer object)."""
    b1, b2 = t_cfg.betas
    if t_cfg.schedule == "constant":
        settings = (b1, b2, t_cfg.weight_decay, "constant", 0, 0)
    else:
        settings = (
            b1,
            b2,
            t_cfg.weight_decay,
            t_cfg.schedule,
            t_cfg.warmup_epochs * steps_per_epoch,
            t_cfg.epochs * steps_per_epoch,
        )
    return () if settings == (0.9, 0.999, 0.0, "constant", 0, 0) else settings
