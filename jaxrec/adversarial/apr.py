"""Adversarial Personalized Ranking (He, He, Du, Chua, SIGIR 2018; AMF = APR on MF).

APR trains on ``L(Θ) + λ · L(Θ + Δ_adv)``: ``L`` is the model's ranking loss on the batch,
``Δ_adv`` the per-row fast gradient perturbation of the embedding tables (FGM, ``eps · g / ||g||``,
:func:`jaxrec.robustness.perturb.fgm`) with ``g = ∂L/∂E`` of the batch's loss *without* the
regulariser, taken with respect to the **whole** tables at the current parameters (rows outside
the batch get 0, repeated rows sum), before each update, and not differentiated through -- as
the authors' code does. ``L(Θ)`` keeps the L2 term; ``L(Θ + Δ)`` does not.

It is a loss wrapper on the shared engine: ``eps``, ``reg`` (λ) and ``start_step`` (the adversarial
term is off before it: APR pretrains with the plain loss) are entries of ``state.hparams``, so
members with different strengths train in one program. Every model works unchanged: the
perturbation acts on the embedding path (NeuMF's four tables, LightGCN's layer-0 tables before
propagation).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrec.models.base import embedding_tables
from jaxrec.robustness.perturb import apply, perturbation, table_gradients
from jaxrec.train.steps import make_loss_fn

HPARAMS = ("eps", "reg", "start_step")  #: the APR entries of ``state.hparams``
PERTURBATIONS = ("fgm", "fgsm")  #: the perturbation APR trains against (:mod:`jaxrec.robustness.perturb`)


def make_apr_loss(
    model, loss: str = "bpr", with_l2: bool = False, relative: bool = False, method: str = "fgm"
) -> Callable:
    """``loss_fn(params, inputs, users, items, mask, key, hparams) -> (loss, aux)`` for APR.

    Reads ``hparams["eps"]``, ``["reg"]``, ``["start_step"]`` and the optimizer step
    ``hparams["step"]`` (the train step passes it); ``aux`` adds ``adv_loss`` (``L(Θ + Δ)``, 0
    while the term is off) to the plain loss's ``loss`` / ``rank_loss``.
    """
    clean_fn = make_loss_fn(model, loss, with_l2)
    rank_fn = make_loss_fn(model, loss, with_l2=False)

    def loss_fn(params, inputs, users, items, mask, key, hparams):
        clean, aux = clean_fn(params, inputs, users, items, mask, key, hparams)

        def rank(p):
            return rank_fn(p, inputs, users, items, mask, key, hparams)[0]

        def adversarial(p):
            frozen = jax.lax.stop_gradient(p)
            delta = perturbation(
                method, embedding_tables(frozen), table_gradients(rank, frozen), hparams["eps"], relative
            )
            return rank(apply(p, jax.lax.stop_gradient(delta)))

        on = hparams["step"] >= hparams["start_step"]
        adv = jax.lax.cond(on, adversarial, lambda p: jnp.zeros((), jnp.float32), params)
        total = clean + hparams["reg"] * adv
        return total, {**aux, "loss": total, "adv_loss": adv}

    return loss_fn
