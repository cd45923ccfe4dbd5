"""Matrix factorisation: ``score(u, i) = <p_u, q_i>`` (Koren et al. 2009; with BPR, Rendle et al. 2009)."""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.models.base import EMBEDDINGS, EmbeddingTables


def dot_scores(user_vecs: jax.Array, item_table: jax.Array, items: jax.Array) -> jax.Array:
    """``user_vecs [B, D]``, ``items [B]`` or ``[B, M]`` -> ``<p_u, q_i>`` of shape ``items.shape``."""
    q = item_table[items]  # [B, D] or [B, M, D]
    if items.ndim == 1:
        return jnp.sum(user_vecs * q, axis=-1)
    return jnp.einsum("bd,bmd->bm", user_vecs, q)


class MF(nn.Module):
    """Matrix factorisation with tables ``embeddings/user [n_users, dim]``, ``embeddings/item``."""

    n_users: int
    n_items: int
    dim: int = 64
    initializer: str = "xavier_normal"
    init_std: float = 0.1
    dtype: jnp.dtype = jnp.float32  #: compute dtype (parameters stay float32)
    #: a pair's score reads only its user's and item's rows (row-wise optimizers train a view)
    row_local: ClassVar[bool] = True
    #: ``score_all`` is the user table times the item table (exported embeddings score by a dot product)
    dot_product: ClassVar[bool] = True

    def setup(self):
        shapes = (("user", self.n_users, self.dim), ("item", self.n_items, self.dim))
        self.tables = EmbeddingTables(shapes, self.initializer, self.init_std, name=EMBEDDINGS)

    def embeddings(self, train: bool = False):
        """Final representations: ``{"user": [n_users, D], "item": [n_items, D]}``."""
        return jax.tree.map(lambda t: t.astype(self.dtype), self.tables())

    def score(self, users, items, cache=None, train: bool = False):
        cache = self.embeddings(train) if cache is None else cache
        return dot_scores(cache["user"][users], cache["item"], items)

    def score_all(self, users, cache=None):
        cache = self.embeddings() if cache is None else cache
        return cache["user"][users] @ cache["item"].T

    def __call__(self, users, items, train: bool = False):
        return self.score(users, items, train=train)
