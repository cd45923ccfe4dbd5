"""GANs from the config's ``gan`` section: the static spec, the fresh state, training through the
one engine with checkpoints (``jaxrec gan --resume`` continues bit-exactly), and CFGAN as a
recommender. The studies that train a GAN (``jaxrec gan``, the attack study's GAN attack and D
detector) are clients of these; the GAN itself is :mod:`jaxrec.adversarial.gan_training`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxrec.adversarial.gan_training import (
    GANFit,
    GANSpec,
    GANState,
    create_gan_state,
    fit_gan,
    gan_adam,
    gan_data,
    kept,
)
from jaxrec.config import Config, GANConfig
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import check_ks, evaluate, split_ranking
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.models.gan import CFGAN, cfgan_variables
from jaxrec.train.engine import init_tracker
from jaxrec.train.parallel import mesh_from_config
from jaxrec.train.state import member, stack


def spec_from_config(g: GANConfig, n_items: int, levels: int = 0) -> GANSpec:
    """:class:`GANSpec` from the ``gan`` section: every spec field is the ``gan.*`` key of the same
    name (``levels``: the data's rating levels ``K``, used when ``gan.rated``); a bad value names
    its ``gan.*`` key."""
    if g.rated and not levels:
        raise JaxrecError("gan.rated: true needs the data's rating levels (integer ratings 1..K)")
    names = {f.name for f in dataclasses.fields(GANSpec)} - {"n_items", "rating_levels"}
    values = {k: tuple(v) if isinstance(v, tuple | list) else v for k, v in ((k, getattr(g, k)) for k in names)}
    try:
        return GANSpec(n_items=n_items, rating_levels=levels if g.rated else 0, **values)
    except JaxrecError as e:
        raise JaxrecError(f"gan.{e}") from None


def state_from_config(g, spec: GANSpec) -> GANState:
    """A fresh :class:`GANState` seeded by ``gan.seed`` with Adam(``g_lr`` / ``d_lr``, ``beta1``)."""
    return create_gan_state(
        spec, jax.random.key(g.seed), g_tx=gan_adam(g.g_lr, g.beta1), d_tx=gan_adam(g.d_lr, g.beta1)
    )


def train_gan(cfg: Config, spec: GANSpec, real: np.ndarray, hook, resume: bool, valid: dict | None = None) -> GANFit:
    """Train the GAN of ``cfg`` on the ``real`` user matrix through the shared engine, with
    checkpoints under ``<output_dir>/<name>/checkpoints`` (every ``checkpoint.every`` epochs and
    at the end) and, with ``resume``, from the latest of them. ``valid``
    (:func:`~jaxrec.adversarial.gan_training.realism_valid`) selects the most realistic epoch,
    validated every ``gan.report_every`` epochs (and the last)."""
    g = cfg.gan
    state = state_from_config(g, spec)
    data = gan_data(real, spec.rating_levels)
    p = cfg.parallel
    with config_key("parallel"):
        mesh = mesh_from_config(p.data, p.model, p.member)
    if mesh is not None and min(g.batch_size, data.n_users) % mesh.shape["data"]:
        raise JaxrecError(
            f"gan.batch_size={g.batch_size} (or the {data.n_users} training users when fewer) must be "
            f"divisible by the {mesh.shape['data']} devices of the 'data' mesh axis"
        )
    ckpt = checkpointer_for(cfg, resume, always=True)
    tracker, start = None, 0
    try:
        if resume:
            stacked = stack([state])
            template = init_tracker(kept(stacked), 1, valid is not None)
            tree, start = ckpt.resume({"state": stacked, "tracker": template})
            state, tracker = member(tree["state"], 0), tree["tracker"]
        fit = fit_gan(
            spec,
            state,
            data,
            epochs=max(g.epochs - start, 0),
            batch_size=g.batch_size,
            on_epoch_end=hook,
            mesh=mesh,
            start_epoch=start,
            tracker=tracker,
            save=ckpt.maybe_save,
            valid=valid,
            eval_every=max(g.report_every, 1),
            select=g.select,
        )
        last = fit.history[-1]["epoch"] if fit.history else start
        if last not in ckpt.epochs():
            ckpt.save(last, {"state": stack([fit.state]), "tracker": fit.tracker})
    finally:
        ckpt.close()
    return fit


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


def train_cfgan(
    cfg: Config, split: Split, on_epoch_end=None, validate: bool = True, resume: bool = False
) -> CFGANResult:
    """Train CFGAN (Chae et al., CIKM 2018) on ``split.train`` for ``gan.epochs`` and test the
    final generator with the shared full-ranking evaluator (training items masked, validation
    items too when scoring test, as for every model).

    Every ``gan.report_every`` epochs (when ``validate`` and the split has a validation part) the
    epoch record gains ``valid/recall@K`` ...; nothing is selected on them (comparisons report the
    final parameters). ``on_epoch_end(epoch, state, record)`` is called after that.
    """
    if not cfg.gan.conditional:
        raise JaxrecError("gan.conditional: CFGAN as a recommender needs gan.conditional: true")
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, split.n_items)
    spec = spec_from_config(cfg.gan, split.n_items)
    purchases = split.train.dense()
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

    fit = train_gan(cfg, spec, purchases, hook, resume)
    variables = cfgan_variables(jax.device_get(fit.state.g.params), purchases)
    metrics = evaluate(model, variables, split_ranking(split, "test", cfg.eval.chunk), ks)
    return CFGANResult(fit, model, variables, metrics, split)
