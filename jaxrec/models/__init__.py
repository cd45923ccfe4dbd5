"""Recommenders on one contract (see :mod:`jaxrec.models.base`); the experiment layer builds
them by name from a config (:func:`jaxrec.experiment.build_model`)."""

from __future__ import annotations

from jaxrec.models.base import (
    EMBEDDINGS,
    batch_l2,
    embedding_tables,
    replace_embedding_tables,
)
from jaxrec.models.hstu import HSTU
from jaxrec.models.lightgcn import LightGCN
from jaxrec.models.mf import MF
from jaxrec.models.neumf import NeuMF
from jaxrec.models.ngcf import NGCF
from jaxrec.models.sequential import BERT4Rec, SASRec, is_sequential

#: The model registry: name (``model.name``) -> Recommender class. Every constructor field is a
#: ``model.*`` config key of the same name (:func:`jaxrec.experiment.build_model` reads them); a
#: class with ``graph_input`` reads the ``"graph"`` collection built from the training data.
#: Sequence models (``query = "history"``, :mod:`jaxrec.models.sequential`) score history windows.
MODELS = {
    "mf": MF,
    "neumf": NeuMF,
    "lightgcn": LightGCN,
    "ngcf": NGCF,
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "hstu": HSTU,
}


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
    "batch_l2",
    "embedding_tables",
    "replace_embedding_tables",
]
