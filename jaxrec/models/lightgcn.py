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

from typing import ClassVar

import jax
import jax.numpy as jnp

from jaxrec.errors import JaxrecError
from jaxrec.models.mf import MF
from jaxrec.models.propagation import GRAPH, propagate


class LightGCN(MF):
    """LightGCN over the ``"graph"`` collection with ``layers`` propagation layers.

    MF's tables, scoring and contract; only the :meth:`embeddings` hook differs (it propagates).

    Attributes:
      propagation: the kernel of :data:`jaxrec.data.graph.PROPAGATIONS` the graph was built for.
    """

    initializer: str = "xavier_uniform"
    layers: int = 3
    propagation: str = "bcsr_vjp"
    row_local: ClassVar[bool] = False  #: propagation reads every row
    graph_input: ClassVar[bool] = True  #: reads the ``"graph"`` collection (:func:`lightgcn_inputs`)

    def graph(self) -> dict | None:
        """The ``"graph"`` collection; None while ``Module.init`` creates the parameters without
        it (they do not depend on the graph: ``MF``-style ``model.init(key, users, items)`` works).
        Applying the model without its graph is a :class:`~jaxrec.errors.JaxrecError`."""
        graph = self.variables.get(GRAPH)
        if graph is None and not self.is_initializing():
            raise JaxrecError(
                f"{type(self).__name__} needs its graph: apply it with {{**params, **inputs}}, the inputs from "
                "lightgcn_inputs(bipartite_graph(train, propagation))"
            )
        return graph

    def embeddings(self, train: bool = False):
        """Propagated representations: ``{"user": [n_users, D], "item": [n_items, D]}``."""
        tables = self.tables()
        eu, ei = tables["user"].astype(self.dtype), tables["item"].astype(self.dtype)
        graph = self.graph()
        if graph is None:  # Module.init without the graph: the parameters are the tables
            return {"user": eu, "item": ei}
        eu, ei = propagate(graph, eu, ei, self.layers, self.propagation)
        return {"user": eu, "item": ei}


def lightgcn_inputs(graph: dict) -> dict:
    """The non-trainable collections of a LightGCN: ``{"graph": {name: array}}`` on device."""
    return {GRAPH: jax.tree.map(jnp.asarray, graph)}
