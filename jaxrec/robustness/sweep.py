"""Metrics under perturbation at many strengths in one vmapped program.

The adversary's loss is BPR over the training (user, positive, sampled negative) triples for
every model (so models are attacked alike); its gradient with respect to the embedding tables is
taken once at the clean parameters, and each strength ``eps`` perturbs the tables by FGM (per-row
L2 norm ``eps``), FGSM or random noise of that norm (:mod:`jaxrec.robustness.perturb`). The
strengths are a ``vmap`` over perturb -> evaluate, so the model's embeddings hook (LightGCN's
propagation: one shared sparse product) runs once per strength inside one compiled program.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxrec.data.sampling import sample_negatives
from jaxrec.evaluate import RankingData, check_ks, evaluate_params
from jaxrec.models.base import embedding_tables
from jaxrec.robustness import perturb
from jaxrec.train.losses import bpr_loss


def adversary_gradients(model, params, inputs: dict, data, key: jax.Array) -> dict:
    """``{table: [rows, d]}``: the gradient of BPR over every training pair (one uniform negative
    each, drawn from ``key``) with respect to the embedding tables, at ``params``.

    ``data`` is the :class:`~jaxrec.train.steps.TrainData` of the training split.
    """
    neg = sample_negatives(key, data.positives, data.users, 1)
    items = jnp.concatenate([data.items[:, None], neg], axis=1)

    def loss(p):
        scores = model.apply({**p, **inputs}, data.users, items, method="score")
        return jnp.sum(bpr_loss(scores[:, 0], scores[:, 1:]) * data.mask) / jnp.sum(data.mask)

    return perturb.table_gradients(loss, params)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _perturbed(model, params, inputs, ranking, ks, method, relative, eps, grads, key):
    tables = embedding_tables(params)

    def one(e):
        delta = perturb.perturbation(method, tables, grads, e, relative, key)
        return evaluate_params(model, {**perturb.apply(params, delta), **inputs}, ranking, ks)

    return jax.vmap(one)(eps)


def perturbed_metrics(
    model, params, inputs: dict, data, ranking: RankingData, eps: Sequence[float], ks: Sequence[int] = (20,),
    method: str = "fgm", relative: bool = False, key: jax.Array | None = None,
) -> list[dict]:
    """Full-ranking metrics at every strength of ``eps`` (one ``{metric: float}`` per strength).

    Args:
      params: one member's ``{"params": ...}``; data: its training data (adversary's triples).
      ranking: e.g. ``split_ranking(split, "test", chunk)``; size ``chunk`` for ``len(eps)`` at once.
      method: ``fgm`` (APR's per-row L2), ``fgsm`` or ``random``; relative: eps x each table's mean
        row norm.
    """
    key = jax.random.key(0) if key is None else key
    ks = check_ks(ks, model.n_items)
    grads = adversary_gradients(model, params, inputs, data, jax.random.fold_in(key, 0))
    out = jax.device_get(_perturbed(model, params, inputs, ranking, ks, method, relative,
                                    jnp.asarray(eps, jnp.float32), grads, jax.random.fold_in(key, 1)))
    return [{k: float(v[i]) for k, v in out.items()} for i in range(len(eps))]
