"""The Recommender contract shared by every model.

A recommender is a ``flax.linen`` module with pure ``init``/``apply``. Its contract:

* ``embeddings(train=False)`` -- the hook that computes the model's *final* representations
  once, as a pytree (``Cache``). MF returns its tables; LightGCN and NGCF propagate the graph
  here (NGCF's message dropout is active only with ``train=True``); evaluation and a whole
  robustness sweep compute it once per parameter set and reuse it for every user chunk.
* ``score(users, items, cache=None)`` -- ``users [B]``, ``items [B]`` or ``[B, M]`` -> scores of the
  same shape as ``items``. Training scores a positive and its negatives as ``items [B, 1 + n_neg]``
  so that propagation (or any shared work) happens once per step.
* ``score_all(users, cache=None)`` -- ``users [B]`` -> ``[B, n_items]`` scores over the whole catalogue.

**Embedding path.** Every trainable embedding table lives under ``params["params"]["embeddings"]``
as a ``[rows, dim]`` array whose name starts with ``user`` (indexed by user ids) or ``item``
(indexed by item ids), e.g. ``{"user": [n_users, d], "item": [n_items, d]}`` for MF and
``{"user_gmf", "item_gmf", "user_mlp", "item_mlp"}`` for NeuMF. Adversarial code (APR,
perturbation sweeps) and the L2 regulariser work on that path without knowing the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.errors import JaxrecError

EMBEDDINGS = "embeddings"  #: name of the params collection entry holding every embedding table

Cache = Any  #: whatever a model's ``embeddings()`` returns (a pytree of arrays)


INITIALIZERS = ("xavier_normal", "xavier_uniform", "normal")  #: names :func:`initializer` knows
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  #: compute dtypes by name (parameters stay float32)


def initializer(name: str, std: float = 0.1) -> Callable:
    """An embedding initialiser by name: ``xavier_normal``, ``xavier_uniform`` or ``normal`` (std)."""
    inits = {
        "xavier_normal": nn.initializers.xavier_normal(),
        "xavier_uniform": nn.initializers.xavier_uniform(),
        "normal": nn.initializers.normal(stddev=std),
    }
    if name not in inits:
        raise JaxrecError(f"unknown initialiser {name!r}; choose one of {sorted(inits)}")
    return inits[name]


class EmbeddingTables(nn.Module):
    """The embedding tables of a model, ``{name: [rows, dim]}``; names start with user/item.

    Mounted as ``self.embeddings`` (module name ``"embeddings"``) by every model, so the tables sit
    at ``params["params"]["embeddings"][name]``.
    """

    shapes: tuple[tuple[str, int, int], ...]  #: (name, rows, dim) per table
    initializer: str = "xavier_normal"
    init_std: float = 0.1

    @nn.compact
    def __call__(self) -> dict[str, jax.Array]:
        init = initializer(self.initializer, self.init_std)
        return {name: self.param(name, init, (rows, dim)) for name, rows, dim in self.shapes}


def embedding_tables(params) -> dict[str, jax.Array]:
    """The ``{name: [rows, dim]}`` embedding tables of any model's params."""
    return params["params"][EMBEDDINGS]


def replace_embedding_tables(params, tables: dict[str, jax.Array]):
    """Params with the embedding tables replaced (e.g. perturbed); other params shared."""
    inner = dict(params["params"])
    inner[EMBEDDINGS] = tables
    return {**params, "params": inner}


def batch_l2(params, users: jax.Array, items: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """LightGCN-style L2 of the batch's layer-0 embeddings: ``sum ||e||^2 / 2 / B``.

    Args:
      users: ``[B]`` user ids; items: ``[B, M]`` item ids (positive and negatives).
      mask: ``[B]`` 1 for real rows, 0 for padding (default: all real); ``B`` counts real rows.
    Returns a scalar; every ``user*`` table is gathered at ``users``, every ``item*`` at ``items``.
    (Rendle et al. 2009 / He et al. 2020; docs/protocols.md "Losses and models".)
    """
    mask = jnp.ones(users.shape, jnp.float32) if mask is None else mask
    total = 0.0
    for name, table in embedding_tables(params).items():
        rows = jnp.square(table[users if name.startswith("user") else items])
        rows = jnp.sum(rows, axis=-1)  # [B] or [B, M]
        w = mask if rows.ndim == 1 else mask[:, None]
        total = total + jnp.sum(rows * w)
    return total / 2.0 / jnp.maximum(jnp.sum(mask), 1.0)
