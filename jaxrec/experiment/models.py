"""Recommenders from the config's ``model`` section: ``(module, non-trainable inputs)``.

The experiment layer reads the config and hands plain values to the modules in
:mod:`jaxrec.models`; a bad value is an error naming its ``model.*`` key.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.models import MF, NGCF, LightGCN, NeuMF

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _mf(cfg, train: Interactions, capacity: int | None = None):
    return MF(train.n_users, train.n_items, cfg.dim, cfg.init, cfg.init_std, DTYPES[cfg.dtype]), {}


def _neumf(cfg, train: Interactions, capacity: int | None = None):
    layers = tuple(cfg.mlp_layers)
    if not layers or min(layers) < 1:
        raise JaxrecError(f"model.mlp_layers: give one or more positive widths, got {list(layers)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise JaxrecError(f"model.dropout must be in [0, 1), got {cfg.dropout}")
    module = NeuMF(
        train.n_users,
        train.n_items,
        cfg.dim,
        layers,
        cfg.dropout,
        cfg.init,
        cfg.init_std,
        DTYPES[cfg.dtype],
    )
    return module, {}


def _graph_model(cls, cfg, train: Interactions, capacity: int | None = None, **extra):
    """LightGCN / NGCF: the module and its ``{"graph": ...}`` inputs for the chosen kernel
    (``capacity``: a masked graph padded to that many edges, normalised on device)."""
    from jaxrec.data.graph import PROPAGATIONS, bipartite_graph
    from jaxrec.models.lightgcn import lightgcn_inputs
    from jaxrec.models.propagation import auto_propagation

    if cfg.layers < 0:
        raise JaxrecError(f"model.layers must be >= 0, got {cfg.layers}")
    kernel = cfg.propagation
    if kernel == "auto":
        kernel = auto_propagation(train.n_users, train.n_items)
    elif kernel not in PROPAGATIONS:
        raise JaxrecError(f"model.propagation: unknown kernel {kernel!r}; choose auto or one of {PROPAGATIONS}")
    module = cls(
        train.n_users,
        train.n_items,
        dim=cfg.dim,
        init=cfg.init,
        init_std=cfg.init_std,
        dtype=DTYPES[cfg.dtype],
        layers=cfg.layers,
        propagation=kernel,
        **extra,
    )
    return module, lightgcn_inputs(bipartite_graph(train, kernel, capacity))


def _lightgcn(cfg, train: Interactions, capacity: int | None = None):
    return _graph_model(LightGCN, cfg, train, capacity)


def _ngcf(cfg, train: Interactions, capacity: int | None = None):
    if not 0.0 <= cfg.dropout < 1.0:
        raise JaxrecError(f"model.dropout must be in [0, 1), got {cfg.dropout}")
    return _graph_model(NGCF, cfg, train, capacity, dropout=cfg.dropout)


#: name -> builder(model_config, train_interactions, capacity) -> (module, non-trainable inputs)
REGISTRY: dict[str, Callable] = {
    "mf": _mf,
    "neumf": _neumf,
    "lightgcn": _lightgcn,
    "ngcf": _ngcf,
}


def build_model(cfg, train: Interactions, capacity: int | None = None):
    """``(module, inputs)`` for the :class:`~jaxrec.config.ModelConfig` ``cfg``; ``inputs`` are
    its non-trainable variable collections built from the training data (e.g. LightGCN's graph;
    ``{}`` for MF). ``capacity``: pad graph inputs to that many edges, so that data variants of
    different sizes share one shape."""
    if cfg.name not in REGISTRY:
        raise JaxrecError(f"model.name: unknown model {cfg.name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[cfg.name](cfg, train, capacity)
