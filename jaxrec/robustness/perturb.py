"""Perturbations of a model's embedding tables: FGM, FGSM and random noise of the same norm.

Every function works on the embedding path of the Recommender contract
(``params["params"]["embeddings"]``: every ``user*`` / ``item*`` table; NeuMF's four, LightGCN's
layer-0 tables, before propagation), never on a particular model. A perturbation ``delta`` is a
dict of arrays shaped like the tables; :func:`apply` adds it.

Definitions (He et al., "Adversarial Personalized Ranking for Recommendation", SIGIR 2018; the
per-row form of its official code):

* **FGM** (the fast gradient method APR uses): ``delta_r = eps * g_r / ||g_r||`` per table row
  ``r``, with ``g`` the gradient of the adversary's loss with respect to the table; rows with a zero
  gradient (outside the batch) stay 0.
* **FGSM**: ``delta = eps * sign(g)`` (an L-inf step: ``sqrt(d)`` times FGM's norm at the same eps).
* **random**: ``delta_r = eps * n_r / ||n_r||``, ``n ~ N(0, I)`` per row, every row (same per-row
  norm as FGM).

``relative``: ``eps`` is multiplied, per table, by the table's mean row norm, so one eps means
the same across models and tables. ``eps`` may be a traced scalar (members, sweeps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrec.errors import JaxrecError
from jaxrec.models.base import embedding_tables, replace_embedding_tables

METHODS = ("fgm", "fgsm", "random")


def scale(tables: dict, eps, relative: bool) -> dict:
    """Per table, the absolute strength: ``eps``, or ``eps`` x the table's mean row norm."""
    if not relative:
        return {k: jnp.asarray(eps, jnp.float32) for k in tables}
    return {k: eps * jnp.mean(jnp.linalg.norm(t.astype(jnp.float32), axis=-1)) for k, t in tables.items()}


def _unit_rows(x: jax.Array) -> jax.Array:
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1.0), 0.0)


def fgm(tables: dict, grads: dict, eps, relative: bool = False) -> dict:
    """``{name: [rows, d]}``: ``eps * g / ||g||`` per row (0 where the gradient is 0)."""
    s = scale(tables, eps, relative)
    return {k: s[k] * _unit_rows(grads[k].astype(jnp.float32)) for k in tables}


def fgsm(tables: dict, grads: dict, eps, relative: bool = False) -> dict:
    """``{name: [rows, d]}``: ``eps * sign(g)``."""
    s = scale(tables, eps, relative)
    return {k: s[k] * jnp.sign(grads[k].astype(jnp.float32)) for k in tables}


def random(key: jax.Array, tables: dict, eps, relative: bool = False) -> dict:
    """``{name: [rows, d]}``: a Gaussian direction per row, scaled to per-row norm ``eps``."""
    s = scale(tables, eps, relative)
    keys = jax.random.split(key, len(tables))
    return {
        k: s[k] * _unit_rows(jax.random.normal(kk, t.shape, jnp.float32))
        for kk, (k, t) in zip(keys, sorted(tables.items()))
    }


def perturbation(method: str, tables: dict, grads: dict | None, eps, relative: bool = False, key=None) -> dict:
    """The perturbation ``method`` (:data:`METHODS`) of ``tables``; ``grads`` for fgm/fgsm,
    ``key`` for random."""
    if method == "fgm":
        return fgm(tables, grads, eps, relative)
    if method == "fgsm":
        return fgsm(tables, grads, eps, relative)
    if method == "random":
        return random(key, tables, eps, relative)
    raise JaxrecError(f"unknown perturbation {method!r}; choose one of {METHODS}")


def table_gradients(loss_of_params, params) -> dict:
    """``{name: [rows, d]}``: the gradient of ``loss_of_params(params)`` with respect to every
    embedding table, at ``params`` (whole tables: rows outside the batch are 0, a row used several
    times sums its gradients -- APR's official code)."""
    tables = embedding_tables(params)

    def of_tables(t):
        return loss_of_params(replace_embedding_tables(params, t))

    return jax.grad(of_tables)(tables)


def apply(params, delta: dict):
    """``params`` with ``delta`` added to the embedding tables (other params shared)."""
    tables = embedding_tables(params)
    return replace_embedding_tables(params, {k: t + delta[k].astype(t.dtype) for k, t in tables.items()})
