"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the normalised user-item graph.

``E^(k+1) = Â E^(k)``, ``E = (1/(K+1)) sum_{k=0..K} E^(k)``, ``score(u, i) = <e_u, e_i>``; the only
trainable parameters are the layer-0 tables ``embeddings/user [n_users, D]`` and
``embeddings/item [n_items, D]``. The graph (arrays of :func:`jaxrec.data.graph.bipartite_graph`)
is the non-trainable variable collection ``"graph"`` -- an argument of every ``apply``, never a
closed-over constant, so it can be vmapped and sharded like any other input.

Propagation happens in the :meth:`LightGCN.embeddings` hook: once per training step (the step
scores ``items [B, 1 + n]`` in one ``score`` call) and once per evaluation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.data.graph import propagate
from jaxrec.models.base import EMBEDDINGS, EmbeddingTables
from jaxrec.models.mf import dot_scores

GRAPH = "graph"  #: name of the variable collection holding the graph arrays


class LightGCN(nn.Module):
    """LightGCN over the ``"graph"`` collection with ``layers`` propagation layers.

    Attributes:
      propagation: the kernel of :data:`jaxrec.data.graph.PROPAGATIONS` the graph was built for.
    """

    n_users: int
    n_items: int
    dim: int = 64
    layers: int = 3
    init: str = "xavier_uniform"
    init_std: float = 0.1
    propagation: str = "bcsr_vjp"
    dtype: jnp.dtype = jnp.float32  #: compute dtype (parameters stay float32)

    def setup(self):
        shapes = (("user", self.n_users, self.dim), ("item", self.n_items, self.dim))
        self.tables = EmbeddingTables(shapes, self.init, self.init_std, name=EMBEDDINGS)

    def embeddings(self):
        """Propagated representations: ``{"user": [n_users, D], "item": [n_items, D]}``."""
        tables = self.tables()
        graph = self.variables[GRAPH]
        eu, ei = propagate(
            graph, tables["user"].astype(self.dtype), tables["item"].astype(self.dtype),
            self.layers, self.propagation,
        )
        return {"user": eu, "item": ei}

    def score(self, users, items, cache=None, train: bool = False):
        """``users [B]``, ``items [B]`` or ``[B, M]`` -> ``<e_u, e_i>`` of ``items``' shape."""
        cache = self.embeddings() if cache is None else cache
        return dot_scores(cache["user"][users], cache["item"], items)

    def score_all(self, users, cache=None):
        """``users [B]`` -> ``[B, n_items]``."""
        cache = self.embeddings() if cache is None else cache
        return cache["user"][users] @ cache["item"].T

    def __call__(self, users, items, train: bool = False):
        return self.score(users, items, train=train)


def lightgcn_inputs(graph: dict) -> dict:
    """The non-trainable collections of a LightGCN: ``{"graph": {name: array}}`` on device."""
    return {GRAPH: jax.tree.map(jnp.asarray, graph)}
