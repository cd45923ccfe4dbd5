"""Recommenders on one contract (see :mod:`jaxrec.models.base`), built by name from a config."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.models.base import (
    EMBEDDINGS,
    batch_l2,
    embedding_tables,
    replace_embedding_tables,
)
from jaxrec.models.mf import MF

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _mf(cfg, train: Interactions):
    return MF(train.n_users, train.n_items, cfg.dim, cfg.init, cfg.init_std, DTYPES[cfg.dtype]), {}


#: name -> builder(model_config, train_interactions) -> (module, non-trainable inputs)
REGISTRY: dict[str, Callable] = {"mf": _mf}


def build_model(cfg, train: Interactions):
    """``(module, inputs)`` for ``cfg.name``; ``inputs`` are its non-trainable variable
    collections built from the training data (e.g. LightGCN's graph; ``{}`` for MF)."""
    if cfg.name not in REGISTRY:
        raise JaxrecError(f"model.name: unknown model {cfg.name!r}; choose one of {sorted(REGISTRY)}")
    if cfg.dtype not in DTYPES:
        raise JaxrecError(f"model.dtype: unknown dtype {cfg.dtype!r}; choose one of {sorted(DTYPES)}")
    if cfg.dim < 1:
        raise JaxrecError(f"model.dim must be >= 1, got {cfg.dim}")
    return REGISTRY[cfg.name](cfg, train)


__all__ = [
    "EMBEDDINGS",
    "MF",
    "REGISTRY",
    "batch_l2",
    "build_model",
    "embedding_tables",
    "replace_embedding_tables",
]
