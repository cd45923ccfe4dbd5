"""Recommenders from the config's ``model`` section: ``(module, non-trainable inputs)``.

The one model registry is :data:`jaxrec.models.MODELS` (a class of your own joins it with
:func:`jaxrec.models.register_model`). A model class is built as ``cls(n_users, n_items,
**fields)``: every further dataclass field the class declares that is a ``model.*`` config key
of the same name gets the config's value, so building one is generic: the values are read,
checked against the config's rules (a bad value names its ``model.*`` key), the compute dtype is
resolved (``dtype`` becomes a jnp dtype) and ``propagation: auto`` becomes the kernel measured
fastest for the data's size. A field that is no config key keeps the class's default (a
subclass with other defaults is another model); one without a default is an error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrec.config import ModelConfig, validate
from jaxrec.data.graph import bipartite_graph
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.models import MODELS
from jaxrec.models.base import DTYPES
from jaxrec.models.contracts import Recommender, SequenceRecommender
from jaxrec.models.lightgcn import lightgcn_inputs
from jaxrec.models.propagation import auto_propagation


def build_model(
    cfg: ModelConfig, train: Interactions, capacity: int | None = None
) -> tuple[Recommender | SequenceRecommender, dict[str, Any]]:
    """``(module, inputs)`` for the :class:`~jaxrec.config.ModelConfig` ``cfg``; ``inputs`` are
    its non-trainable variable collections built from the training data (e.g. LightGCN's graph;
    ``{}`` for MF). ``capacity``: pad graph inputs to that many edges, so that data variants of
    different sizes share one shape."""
    validate(cfg, "model")  # sections check themselves when built; this is the cheap repeat
    cls = MODELS[cfg.name]
    own = [f for f in dataclasses.fields(cls) if f.name not in ("n_users", "n_items", "parent", "name")]
    keys = {f.name for f in dataclasses.fields(ModelConfig)}
    required = [f.name for f in own if f.name not in keys and f.default is f.default_factory is dataclasses.MISSING]
    if required:
        raise JaxrecError(
            f"model.name: {cfg.name} ({cls.__qualname__}) has fields without a default that are no model.* "
            f"config key: {required}; give them defaults"
        )
    values = {f.name: getattr(cfg, f.name) for f in own if f.name in keys}
    if "dtype" in values:
        values["dtype"] = DTYPES[cfg.dtype]
    if values.get("propagation") == "auto":
        values["propagation"] = auto_propagation(train.n_users, train.n_items)
    if "attn_dropout" in values and values["attn_dropout"] is None:
        values["attn_dropout"] = -1.0  # the hidden dropout
    if "mlp_layers" in values:
        values["mlp_layers"] = tuple(values["mlp_layers"])
    module = cls(train.n_users, train.n_items, **values)
    if not getattr(cls, "graph_input", False):
        return module, {}
    return module, lightgcn_inputs(bipartite_graph(train, module.propagation, capacity))
