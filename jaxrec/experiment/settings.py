"""A training's settings checked and turned into plain values, before any work: every
``train`` / ``eval`` rule that spans fields (:func:`check_train`) and Adam's arguments
(:func:`optimizer_settings`)."""

from __future__ import annotations

from jaxrec.adversarial import SEQUENCE_ONLY
from jaxrec.config import Config, validate
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import METRICS
from jaxrec.experiment.sequences import check_sequence
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.train.losses import LOSSES


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
    row_local = getattr(MODELS[cfg.model.name], "row_local", False)
    if cfg.adv.method != "none" and cfg.adv.relative and t_cfg.optimizer != "adam" and row_local:
        raise JaxrecError(
            f"adv.relative: true needs each table's mean row norm, and train.optimizer: {t_cfg.optimizer} (row-wise) "
            "sees only the batch's rows; use adv.relative: false or train.optimizer: adam"
        )


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
