"""NGCF (Wang et al., "Neural Graph Collaborative Filtering", SIGIR 2019).

Each layer transforms messages over the same normalised adjacency ``Â`` as LightGCN (built by
:func:`jaxrec.data.graph.bipartite_graph`, propagated by
:func:`jaxrec.models.propagation.propagate_layer`, the paper's eq. 7 with ``L = Â``):

    E^(k+1) = LeakyReLU_0.2( (Â E^(k) + E^(k)) W1_k + b1_k + ((Â E^(k)) ⊙ E^(k)) W2_k + b2_k )

followed by message dropout and row-wise L2 normalisation; the final representation of a node is
the concatenation ``[E^(0) ; E^(1) ; ... ; E^(K)]`` (dimension ``D (K + 1)``) and
``score(u, i) = <e_u, e_i>``. The weights ``W1_k``, ``W2_k`` (``[D, D]``) are shared by users
and items. RecBole's ``BiGNNLayer`` computes the same layer. Where the reference codes differ:

* the next layer reads a layer's *un-normalised* output, as in the authors' code; RecBole feeds
  it the normalised one (on ml-100k, same split: Recall@20 0.264 with RecBole's variant vs 0.285
  with this one, bench/README.md);
* messages use the symmetric ``Â`` (and ``Â + I`` in the sum message), as in the paper and
  RecBole; the authors' PyTorch code propagates with the row-normalised ``D^-1 (A + I)`` instead;
* the L2 term is ``train.l2`` times the L2 of the batch's *layer-0* embeddings (the regulariser
  every model here shares); both reference codes regularise the final, concatenated ones.

NGCF is LightGCN's class with a different :meth:`NGCF.embeddings` hook: same tables, graph
collection, kernels, scoring, training step and evaluator.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.neumf import CounterDropout
from jaxrec.models.propagation import propagate_layer


class NGCF(LightGCN):
    """NGCF with ``layers`` layers of width ``dim`` and message dropout ``dropout``.

    Attributes (besides LightGCN's): ``dropout`` -- message dropout after each layer (RecBole's
    default 0.1), active only in training (``embeddings(train=True)``, rng stream ``"dropout"``).
    """

    initializer: str = "xavier_uniform"
    dropout: float = 0.1

    def setup(self):
        super().setup()
        dense = lambda name: nn.Dense(  # noqa: E731
            self.dim,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=nn.initializers.xavier_uniform(),
            name=name,
        )
        self.w_sum = [dense(f"gc_{k}") for k in range(self.layers)]
        self.w_bi = [dense(f"bi_{k}") for k in range(self.layers)]
        self.drop = CounterDropout(self.dropout)

    def embeddings(self, train: bool = False):
        """``{"user": [n_users, D (K+1)], "item": [n_items, D (K+1)]}``: the concatenated layers."""
        tables = self.tables()
        eu, ei = tables["user"].astype(self.dtype), tables["item"].astype(self.dtype)
        n_users = eu.shape[0]
        graph = self.graph()  # None in Module.init: no messages, the same parameters
        outs = [jnp.concatenate([eu, ei])]  # [N, D], N = n_users + n_items
        for w_sum, w_bi in zip(self.w_sum, self.w_bi):
            if graph is None:
                side_u, side_i = jnp.zeros_like(eu), jnp.zeros_like(ei)
            else:
                side_u, side_i = propagate_layer(graph, eu, ei, self.propagation)
            ego, side = jnp.concatenate([eu, ei]), jnp.concatenate([side_u, side_i])
            h = nn.leaky_relu(w_sum(ego + side) + w_bi(ego * side), negative_slope=0.2)
            h = self.drop(h, deterministic=not train)
            outs.append(h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12))
            eu, ei = h[:n_users], h[n_users:]  # the next layer reads the un-normalised output
        final = jnp.concatenate(outs, axis=-1)
        return {"user": final[:n_users], "item": final[n_users:]}
