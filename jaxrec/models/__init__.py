"""Recommenders on one contract (see :mod:`jaxrec.models.base`); the experiment layer builds
them by name from a config (:func:`jaxrec.experiment.build_model`). A model of your own joins the
registry with :func:`register_model` (its contract: :mod:`jaxrec.models.contracts`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jaxrec.errors import JaxrecError
from jaxrec.models.base import (
    EMBEDDINGS,
    batch_l2,
    embedding_tables,
    replace_embedding_tables,
)
from jaxrec.models.contracts import Recommender, SequenceRecommender, check_contract
from jaxrec.models.hstu import HSTU
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.mf import MF
from jaxrec.models.neumf import NeuMF
from jaxrec.models.ngcf import NGCF
from jaxrec.models.sequential import BERT4Rec, SASRec, is_sequential

#: The model registry: name (``model.name``) -> Recommender class. Every constructor field that
#: is a ``model.*`` config key of the same name is read from the config
#: (:func:`jaxrec.experiment.build_model`); a class with ``graph_input`` reads the ``"graph"``
#: collection built from the training data. Sequence models (``query = "history"``,
#: :mod:`jaxrec.models.sequential`) score history windows. :func:`register_model` adds to it.
MODELS = {
    "mf": MF,
    "neumf": NeuMF,
    "lightgcn": LightGCN,
    "ngcf": NGCF,
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "hstu": HSTU,
}

if TYPE_CHECKING:  # the type checker holds the built-in models to their contracts
    _BY_USERS: tuple[type[Recommender], ...] = (MF, NeuMF, LightGCN, NGCF)
    _BY_HISTORY: tuple[type[SequenceRecommender], ...] = (SASRec, BERT4Rec, HSTU)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register_model(name: str, cls: type) -> type:
    """Make the flax module class ``cls`` the model ``model.name: <name>``, for every path that
    takes a config: ``jaxrec.run``, sweeps and members, the mesh, checkpoints, ``load_run`` and
    the studies. Returns ``cls``.

    ``cls`` follows the Recommender contract (user-id queries) or, with ``query = "history"``,
    the sequence contract (:mod:`jaxrec.models.contracts`). Its constructor is
    ``cls(n_users, n_items, **fields)``: each further field named like a ``model.*`` config key
    (``dim``, ``layers``, ``dropout``, ``initializer``, ``init_std``, ``dtype``, ``max_len``, ...)
    gets the config's value; any other field keeps its default. A name already registered, or a
    class that lacks its contract's fields or methods, is one :class:`JaxrecError`.

    The registry lives in the process: register before loading a config or a saved run that names
    the model (``jaxrec --import MODULE ...`` does it for the command line).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise JaxrecError(
            f"register_model: the name must be letters, digits, '_', '.' or '-' (a YAML value), got {name!r}"
        )
    if name in MODELS:
        raise JaxrecError(
            f"register_model: {name!r} is already a model ({MODELS[name].__module__}.{MODELS[name].__qualname__}); "
            "choose another name"
        )
    check_contract(cls, f"register_model({name!r})")
    MODELS[name] = cls
    return cls


__all__ = [
    "BERT4Rec",
    "EMBEDDINGS",
    "HSTU",
    "SASRec",
    "is_sequential",
    "LightGCN",
    "MF",
    "NGCF",
    "NeuMF",
    "MODELS",
    "Recommender",
    "SequenceRecommender",
    "batch_l2",
    "register_model",
    "embedding_tables",
    "replace_embedding_tables",
]
