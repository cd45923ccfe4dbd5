"""CFGAN (Chae et al., CIKM 2018) trained and tested as a recommender.

The generator is trained adversarially (:mod:`jaxrec.adversarial.gan_training`, conditional
mode) on the training split's user vectors and then ranked by the shared full-ranking evaluator
(:func:`jaxrec.evaluate.evaluate`) through the :class:`jaxrec.models.gan.CFGAN` Recommender
module -- training items masked, test scored with validation items masked too, exactly as every
other model.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxrec.adversarial.gan_training import (
    GANFit,
    fit_gan,
    gan_data,
    spec_from_config,
    state_from_config,
    training_setup,
    user_matrix,
)
from jaxrec.config import Config
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import check_ks, evaluate, split_ranking
from jaxrec.models.gan import CFGAN, cfgan_variables


@dataclasses.dataclass
class CFGANResult:
    """A trained CFGAN: the GAN fit, the Recommender module and its variables, test metrics."""

    fit: GANFit
    model: CFGAN
    variables: dict
    metrics: dict
    split: Split


def cfgan_model(cfg: Config, split: Split) -> CFGAN:
    """The :class:`CFGAN` Recommender for ``cfg.gan`` over ``split``'s id space."""
    return CFGAN(split.n_users, split.n_items, tuple(cfg.gan.g_hidden), cfg.gan.noise_dim)


def train_cfgan(cfg: Config, split: Split, on_epoch_end=None, validate: bool = True) -> CFGANResult:
    """Train CFGAN on ``split.train`` for ``cfg.gan.epochs`` and test the final generator.

    Every ``cfg.gan.report_every`` epochs (when ``validate`` and the split has a validation part)
    the epoch record gains ``valid/recall@K`` ... from the shared evaluator; nothing is selected on
    them (comparisons report the final parameters). ``on_epoch_end(epoch, state, record)`` is
    called after that.
    """
    if not cfg.gan.conditional:
        raise JaxrecError("gan.conditional: CFGAN as a recommender needs gan.conditional: true")
    ks = check_ks(cfg.eval.ks, split.n_items)
    spec = spec_from_config(cfg.gan, split.n_items)
    purchases = user_matrix(split.train)
    model = cfgan_model(cfg, split)
    valid = split_ranking(split, "valid", cfg.eval.chunk) if validate and split.valid is not None else None
    every = cfg.gan.report_every

    def hook(epoch, state, record):
        last = epoch == cfg.gan.epochs
        if valid is not None and ((every > 0 and epoch % every == 0) or last):
            scores = evaluate(model, cfgan_variables(state.g.params, purchases), valid, ks)
            record.update({f"valid/{k}": v for k, v in scores.items()})
        if on_epoch_end is not None:
            on_epoch_end(epoch, state, record)

    state, data, epoch_fn = training_setup(
        spec, state_from_config(cfg.gan, spec), gan_data(purchases), cfg.gan.batch_size, cfg.parallel
    )
    fit = fit_gan(spec, state, data, cfg.gan.epochs, cfg.gan.batch_size, hook, epoch_fn)
    variables = cfgan_variables(jax.device_get(fit.state.g.params), purchases)
    metrics = evaluate(model, variables, split_ranking(split, "test", cfg.eval.chunk), ks)
    return CFGANResult(fit, model, variables, metrics, split)


def most_popular_scores(split: Split) -> np.ndarray:
    """``[n_items]`` training-interaction counts: the most-popular baseline's score of every item
    (the same for every user; rank it with :func:`jaxrec.evaluate.metric_sums`)."""
    return np.bincount(split.train.items, minlength=split.n_items).astype(np.float32)
