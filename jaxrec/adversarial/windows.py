"""Adversarial training of sequence models on their input windows: APR and VAT (and the dispatch
to Yue et al.'s substitution defenses, :mod:`jaxrec.adversarial.substitution`).

A sequence model (:mod:`jaxrec.models.sequential`) reads a user's window through its ``embed``
hook, ``[B, w] -> [B, w, D]``, the gathered rows of the input item table. APR (He, He, Du, Chua,
SIGIR 2018) perturbs those gathered rows, one FGM step per *position*, never the shared item
table (one table row moves every user holding the item; a window's rows are one user's input):

    loss = L(clean) + reg * L(window rows + Δ),   Δ[b, t] = eps * g[b, t] / ||g[b, t]||

with ``g = ∂L/∂embedded [B, w, D]`` the gradient of the clean batch loss at the current
parameters, not differentiated through (``stop_gradient``), as APR's code does for tables. The
FGM step is :func:`jaxrec.robustness.perturb.fgm` with the window as the "table" and the
positions as its rows; padding positions and BERT4Rec's mask token are never moved. One forward
and backward pass of ``L(clean)`` gives both its gradient and ``g``
(:func:`jaxrec.adversarial.apr.value_and_own_grad`, at the point ``(params, embedded)``), so a
step costs two passes, as APR on an embedding model. ``relative`` multiplies ``eps`` by the
mean L2 norm of the real items' input rows (:func:`jaxrec.robustness.windows.item_row_norm`).

**VAT** (Zhang et al., RecSys 2024; :mod:`jaxrec.adversarial.vat`) gives each window its own
strength ``eps * w_r`` with ``w_r = lam * sigmoid(m / (L_r + 1e-9) - 1)``
(:func:`~jaxrec.adversarial.vat.user_weights`, the rows of the batch as its "users"): ``L_r``
is the **sum** of the window's clean position losses -- VAT's ``L_u`` sums a user's examples in
the batch, and a window's examples are its target positions -- and ``m`` their mean over the
batch's windows. Rows rather than user ids: the loss sees the windows, not their users, and
a user's windows are disjoint stretches of its history (``train.windows: all``), each fitted on
its own. As VAT's per-user sum does for active users, a longer window counts as less well
fitted (a smaller weight). With equal window losses every ``w_r = lam / 2``: VAT at ``lam = 2``
is APR at the same ``eps``.

Both run inside each length bucket's branch (:func:`jaxrec.train.sequence.make_sequence_loss_fn`'s
``objective``), so the buckets keep working; ``eps``, ``reg`` and ``start_step`` (and
``vat_lambda``) are ``state.hparams`` entries, as for embedding models (members).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrec.adversarial.apr import value_and_own_grad
from jaxrec.adversarial.substitution import make_dirichlet_objective, make_mix_objective
from jaxrec.adversarial.vat import user_weights
from jaxrec.errors import JaxrecError
from jaxrec.robustness import perturb
from jaxrec.robustness.windows import item_row_norm

SEQUENCE_METHODS = ("none", "apr", "vat", "mix", "dirichlet")  #: ``adv.method`` s of a sequence model


class WindowAdversary(NamedTuple):
    """A sequence model's adversarial training settings (hashable: part of the program key).

    ``method``: :data:`SEQUENCE_METHODS`; ``relative``/``perturb``: APR's strength unit and step
    (``fgm`` | ``fgsm``); the rest are Yue et al.'s (:mod:`jaxrec.adversarial.substitution`):
    ``ratio`` the share of real positions substituted, ``mix_steps``/``mix_step`` the ascent on
    the simplex, ``alpha``/``decay`` the Dirichlet weights of first / second-order neighbours,
    ``neighbours`` per order, ``min_neighbours``, ``min_cos`` and ``update_epochs`` the
    neighbour table's rules."""

    method: str = "apr"
    relative: bool = False
    perturb: str = "fgm"
    ratio: float = 0.5
    mix_steps: int = 3
    mix_step: float = 1.0
    alpha: float = 1.0
    decay: float = 0.5
    neighbours: int = 25
    min_neighbours: int = 2
    min_cos: float = 0.5
    update_epochs: int = 10


def real_positions(model, history: jax.Array) -> jax.Array:
    """``[B, w]`` bool: the positions holding an item (not padding, not BERT4Rec's mask token)."""
    return history < model.n_items


def adversarial_on(hparams) -> jax.Array:
    """Whether the adversarial term is on at this step (``hparams["step"] >= start_step``)."""
    return hparams["step"] >= hparams["start_step"]


def window_delta(method: str, grads: jax.Array, eps, real: jax.Array) -> jax.Array:
    """``[B, w, D]``: the ``method`` (fgm | fgsm) step of :mod:`jaxrec.robustness.perturb` on
    the window rows, positions as rows, from ``grads [B, w, D]``; ``eps`` a scalar or a dict
    ``{"window": [B, 1]}`` (a strength per window); 0 where ``real [B, w]`` is False."""
    delta = perturb.perturbation(method, {"window": grads}, {"window": grads}, eps)["window"]
    return delta * real[..., None]


def make_apr_objective(model, adversary: WindowAdversary) -> Callable:
    """The ``objective`` of :func:`jaxrec.train.sequence.make_sequence_loss_fn` for APR, or VAT
    (``adversary.method == "vat"``): ``(total, {"rank_loss", "adv_loss"})`` as sums over the
    weighted positions of one width (see the module docstring)."""
    vat = adversary.method == "vat"

    def objective(per, variables, history, items, weights, key, hparams):
        embedded = model.apply(variables, history, method="embed")  # [B, w, D]
        real = real_positions(model, history)[..., None]

        def clean(point, history, items, weights, key):
            pos = per(point[0], history, items, key, embedded=point[1])  # [B, w]
            return jnp.sum(pos * weights), pos

        # one forward and backward pass: the clean term's gradient and the FGM direction
        (clean_sum, pos), grads = value_and_own_grad(clean)((variables, embedded), history, items, weights, key)

        def adversarial(point):
            eps = hparams["eps"]
            if adversary.relative:
                eps = eps * jax.lax.stop_gradient(item_row_norm(model, point[0]))
            if vat:
                rows = jnp.sum(jax.lax.stop_gradient(pos) * weights, axis=1)  # [B] L_r
                present = (jnp.sum(weights, axis=1) > 0).astype(jnp.float32)
                n = history.shape[0]
                w = user_weights(rows, jnp.arange(n), present, n, hparams["vat_lambda"])  # [B]
                eps = {"window": eps * w[:, None]}  # [B, 1]: one strength per window
            delta = window_delta(adversary.perturb, jax.lax.stop_gradient(grads[1]), eps, real[..., 0])
            moved = point[1] + jax.lax.stop_gradient(delta).astype(point[1].dtype)
            return jnp.sum(per(point[0], history, items, key, embedded=moved) * weights)

        off = lambda p: jnp.zeros((), jnp.float32)  # noqa: E731
        adv = jax.lax.cond(adversarial_on(hparams), adversarial, off, (variables, embedded))
        return clean_sum + hparams["reg"] * adv, {"rank_loss": clean_sum, "adv_loss": adv}

    return objective


def window_objective(model, adversary: WindowAdversary) -> Callable:
    """The loss ``objective`` of ``adversary.method`` for a sequence model."""
    makers = {
        "apr": make_apr_objective,
        "vat": make_apr_objective,
        "mix": make_mix_objective,
        "dirichlet": make_dirichlet_objective,
    }
    if adversary.method not in makers:
        raise JaxrecError(f"adv.method: {adversary.method!r} for a sequence model; choose one of {SEQUENCE_METHODS}")
    return makers[adversary.method](model, adversary)
