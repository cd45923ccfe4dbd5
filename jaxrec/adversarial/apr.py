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
import numpy as np

from jaxrec.adversarial.vat import row_strengths, user_weights
from jaxrec.errors import JaxrecError
from jaxrec.models.base import batch_l2, embedding_tables
from jaxrec.robustness.perturb import apply, perturbation
from jaxrec.train.steps import make_example_losses

HPARAMS = ("eps", "reg", "start_step")  #: the APR entries of ``state.hparams`` (VAT adds ``vat_lambda``)
PERTURBATIONS = ("fgm", "fgsm")  #: the perturbation APR trains against (:mod:`jaxrec.robustness.perturb`)
PERTURB_AT = ("tables", "final")  #: where it acts: the embedding tables, or the final representations


def make_apr_loss(
    model,
    loss: str = "bpr",
    with_l2: bool = False,
    relative: bool = False,
    method: str = "fgm",
    vat: bool = False,
    at: str = "tables",
) -> Callable:
    """``loss_fn(params, inputs, users, items, mask, key, hparams) -> (loss, aux)`` for APR, or
    for VAT with ``vat`` (per-user strengths, :mod:`jaxrec.adversarial.vat`).

    ``at``: where ``Δ`` acts (:data:`PERTURB_AT`). ``tables``: the embedding tables, as APR's
    code does. ``final``: the model's final representations (``model.embeddings()``, e.g.
    LightGCN's propagated embeddings), as VAT's code does for LightGCN; then ``g`` is the gradient
    with respect to them, and a step propagates twice instead of four times. For MF and NeuMF the
    final representations are the tables, so both give the same gradient.

    Reads ``hparams["eps"]``, ``["reg"]``, ``["start_step"]`` (VAT: also ``["vat_lambda"]``) and
    the optimizer step ``hparams["step"]`` (the train step passes it); ``aux`` adds ``adv_loss``
    (``L(Θ + Δ)``, 0 while the term is off) to the plain loss's ``loss`` / ``rank_loss``.
    """
    if at not in PERTURB_AT:
        raise JaxrecError(f"unknown adv.perturb_at {at!r}; choose one of {PERTURB_AT}")
    example_losses = make_example_losses(model, loss)

    def loss_fn(params, inputs, users, items, mask, key, hparams):
        # the point the loss is differentiated at: the params, or (params, final representations)
        if at == "tables":
            point, tables_of, moved = params, embedding_tables, apply

            def losses(p):
                return example_losses(p, inputs, users, items, key)

        else:
            cache = model.apply({**params, **inputs}, train=True, method="embeddings", rngs={"dropout": key})
            point = (params, cache)

            def tables_of(pc):
                return pc[1]

            def moved(pc, delta):
                return pc[0], {k: t + delta[k].astype(t.dtype) for k, t in pc[1].items()}

            def losses(pc):
                return example_losses(pc[0], inputs, users, items, key, pc[1])

        def rank(x):
            per = losses(x)
            return jnp.sum(per * mask) / jnp.maximum(jnp.sum(mask), 1.0), per

        # one forward and backward pass of L serves both its own gradient and the FGM direction
        # (two passes per step, not three: docs/adversarial.md)
        (rank_loss, per), grads = value_and_own_grad(rank)(point)
        clean = rank_loss
        if with_l2:
            clean = clean + hparams["l2"] * batch_l2(params, users, items, mask)

        def adversarial(x):
            frozen = tables_of(jax.lax.stop_gradient(x))
            g = jax.lax.stop_gradient(tables_of(grads))
            eps = hparams["eps"]
            if vat:
                n_users = next(t.shape[0] for k, t in frozen.items() if k.startswith("user"))
                w = user_weights(jax.lax.stop_gradient(per), users, mask, n_users, hparams["vat_lambda"])
                eps = row_strengths(frozen, eps, w, users, items, mask)
            delta = perturbation(method, frozen, g, eps, relative)
            return rank(moved(x, jax.lax.stop_gradient(delta)))[0]

        on = hparams["step"] >= hparams["start_step"]
        adv = jax.lax.cond(on, adversarial, lambda x: jnp.zeros((), jnp.float32), point)
        total = clean + hparams["reg"] * adv
        return total, {"loss": total, "rank_loss": rank_loss, "adv_loss": adv}

    return loss_fn


def value_and_own_grad(fn: Callable) -> Callable:
    """``(p, *args) -> ((value, aux), ∂value/∂p)`` for ``fn(p, *args) -> (value, aux)``, whose
    derivative is the gradient it has already computed.

    Differentiating ``value`` reuses the stored gradient -- no second
    backward pass; the gradient output is a constant (stop it before use). With it APR computes
    ``L``, ``∂L/∂Θ`` for the perturbation and ``∂L/∂Θ`` for the update in one pass. ``args`` are
    constants (their cotangents are zeros): pass the batch's arrays through them rather than by
    closure (a custom VJP inside ``lax.switch`` / ``lax.cond`` may not close over traced values).
    """

    @jax.custom_vjp
    def f(p, *args):
        return jax.value_and_grad(fn, has_aux=True)(p, *args)

    def fwd(p, *args):
        (value, aux), g = jax.value_and_grad(fn, has_aux=True)(p, *args)
        return ((value, aux), g), (g, args)

    def bwd(res, cotangent):
        g, args = res
        return (jax.tree.map(lambda x: cotangent[0][0] * x, g), *jax.tree.map(_no_cotangent, args))

    f.defvjp(fwd, bwd)
    return f


def _no_cotangent(x):
    """A zero cotangent for the constant ``x`` (``float0`` for integers and keys)."""
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)
