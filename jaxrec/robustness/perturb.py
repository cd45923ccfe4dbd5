"""Perturbations of a model's embedding tables: FGM, FGSM, PGD and random (Gaussian) noise.

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
* **gaussian**: ``delta ~ N(0, eps^2 / d)`` elementwise (per-row L2 norm ``eps`` in expectation,
  not exactly).
* **PGD** (projected gradient descent, Madry et al., "Towards Deep Learning Models Resistant to
  Adversarial Attacks", ICLR 2018; the L2 form, per row): from ``delta = 0`` (or a random point
  of the ball), ``steps`` times ``delta <- P(delta + alpha * g_r / ||g_r||)`` with ``g`` the
  gradient at ``tables + delta`` and ``P`` the projection of every row back onto its L2 ball of
  radius ``eps``; ``alpha`` defaults to ``2.5 * eps / steps``. One step with ``alpha = eps`` from
  0 is FGM.

``relative``: ``eps`` is multiplied, per table, by the table's mean row norm, so one eps means
the same across models and tables. ``eps`` may be a traced scalar (members, sweeps), or a dict
``{table: [rows]}`` of per-row strengths (VAT's per-user magnitudes,
:mod:`jaxrec.adversarial.vat`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrec.errors import JaxrecError
from jaxrec.models.base import embedding_tables, replace_embedding_tables

METHODS = ("random", "gaussian", "fgm", "fgsm", "pgd")  #: the first four are one-shot; PGD iterates (:func:`pgd`)


def scale(tables: dict, eps, relative: bool) -> dict:
    """Per table, the absolute strength: ``eps``, or ``eps`` x the table's mean row norm; a
    scalar, or ``[rows, 1]`` when ``eps`` is a dict of per-row strengths ``{table: [rows]}``."""
    per = {k: jnp.asarray(eps[k], jnp.float32)[:, None] for k in tables} if isinstance(eps, dict) else None
    if not relative:
        return per or {k: jnp.asarray(eps, jnp.float32) for k in tables}
    norms = {k: jnp.mean(jnp.linalg.norm(t.astype(jnp.float32), axis=-1)) for k, t in tables.items()}
    return {k: (per[k] if per else eps) * norms[k] for k in tables}


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


def gaussian(key: jax.Array, tables: dict, eps, relative: bool = False) -> dict:
    """``{name: [rows, d]}``: ``N(0, (eps / sqrt(d))^2)`` elementwise."""
    s = scale(tables, eps, relative)
    keys = jax.random.split(key, len(tables))
    return {
        k: s[k] / jnp.sqrt(t.shape[-1]) * jax.random.normal(kk, t.shape, jnp.float32)
        for kk, (k, t) in zip(keys, sorted(tables.items()))
    }


def project(delta: dict, radius: dict) -> dict:
    """Every row of ``delta`` scaled back onto its L2 ball (``radius``: per table, a scalar)."""
    out = {}
    for k, d in delta.items():
        norm = jnp.linalg.norm(d, axis=-1, keepdims=True)
        out[k] = d * jnp.minimum(1.0, radius[k] / jnp.maximum(norm, 1e-12))
    return out


def pgd(
    loss_of_tables,
    tables: dict,
    eps,
    steps: int,
    step_size=None,
    relative: bool = False,
    random_start: bool = False,
    key=None,
) -> dict:
    """``{name: [rows, d]}``: L2 PGD on ``loss_of_tables(tables) -> scalar`` (ascent), every row
    inside its ball of radius ``eps`` (x the table's mean row norm when ``relative``).

    Args:
      steps: iterations (static); step_size: ``alpha`` relative to ``eps`` (a fraction: the step
        is ``step_size * eps``), default ``2.5 / steps``; random_start: start at a uniform
        direction of norm ``U(0, 1) * eps`` per row (``key`` needed).
    """
    radius = scale(tables, eps, relative)
    frac = 2.5 / steps if step_size is None else step_size
    grad = jax.grad(lambda d: loss_of_tables({k: t + d[k].astype(t.dtype) for k, t in tables.items()}))
    delta = {k: jnp.zeros(t.shape, jnp.float32) for k, t in tables.items()}
    if random_start:
        direction = random(key, tables, 1.0)
        keys = jax.random.split(jax.random.fold_in(key, 1), len(tables))
        delta = {
            k: direction[k] * radius[k] * jax.random.uniform(kk, (t.shape[0], 1))
            for kk, (k, t) in zip(keys, sorted(tables.items()))
        }

    def body(_, d):
        g = grad(d)
        return project({k: d[k] + frac * radius[k] * _unit_rows(g[k].astype(jnp.float32)) for k in d}, radius)

    return jax.lax.fori_loop(0, steps, body, delta)


def perturbation(method: str, tables: dict, grads: dict | None, eps, relative: bool = False, key=None) -> dict:
    """The one-shot perturbation ``method`` of ``tables`` (fgm, fgsm, random, gaussian; PGD
    iterates on the loss: :func:`pgd`); ``grads`` for fgm/fgsm, ``key`` for random/gaussian."""
    if method == "fgm":
        return fgm(tables, grads, eps, relative)
    if method == "fgsm":
        return fgsm(tables, grads, eps, relative)
    if method == "random":
        return random(key, tables, eps, relative)
    if method == "gaussian":
        return gaussian(key, tables, eps, relative)
    raise JaxrecError(f"unknown one-shot perturbation {method!r}; choose one of {METHODS[:4]} (pgd: perturb.pgd)")


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
