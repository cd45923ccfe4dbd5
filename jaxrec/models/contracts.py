"""The two contracts a model class follows, as ``typing.Protocol`` classes (:class:`Recommender`,
:class:`SequenceRecommender`: a type checker checks a class against them, ``isinstance`` checks
the methods are there) and as the check a class passes when it joins the registry
(:func:`jaxrec.models.register_model`).

* **Recommender** (:mod:`jaxrec.models.base`): a ``flax.linen.Module`` whose first two fields are
  ``n_users`` and ``n_items``, with ``embeddings(train=False)``, ``score(users, items, cache=None,
  train=False)``, ``score_all(users, cache=None)`` and ``__call__(users, items, train=False)``
  (the entry :func:`jaxrec.train.state.init_params` initialises through). Its embedding tables
  live under ``params["params"]["embeddings"]``, named ``user*`` / ``item*``.
* **Sequence recommender** (:mod:`jaxrec.models.sequential`, ``query = "history"``): the same
  fields plus ``max_len``; ``embed``, ``encode``, ``hidden``, ``embeddings``, ``score``,
  ``score_all``, ``logits``, ``query_window``, ``query_vectors``, ``window_scores`` and
  ``__call__``; ``objective`` ``"next"`` or ``"cloze"``. Subclassing
  :class:`~jaxrec.models.sequential.SequenceModel` gives all of them.

Optional class attributes the engine reads, with their defaults: ``row_local = False`` (a pair's
score reads only its user's and item's rows: row-wise optimizers train a view),
``dot_product = False`` (``score_all`` is the user vectors times the item table: exports and
``TrainedModel.user_embeddings`` need it), ``graph_input = False`` (the module reads the
``"graph"`` collection built from the training data, as LightGCN).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import flax.linen as nn
import jax

from jaxrec.errors import JaxrecError

Cache = Any  #: whatever a model's ``embeddings()`` returns (a pytree of arrays)
Variables = Mapping[str, Any]  #: flax variables: ``{"params": ..., **non-trainable collections}``


@runtime_checkable
class Recommender(Protocol):
    """A recommender queried by user ids (:mod:`jaxrec.models.base`): a ``flax.linen`` module
    with pure ``init`` / ``apply`` whose embedding tables live under
    ``params["params"]["embeddings"]`` (``user*`` / ``item*``)."""

    n_users: int
    n_items: int

    def embeddings(self, train: bool = False) -> Cache:
        """The final representations, computed once and reused for every user chunk."""
        ...

    def score(self, users: jax.Array, items: jax.Array, cache: Cache = None, train: bool = False) -> jax.Array:
        """``users [B]``, ``items [B]`` or ``[B, M]`` -> scores shaped like ``items``."""
        ...

    def score_all(self, users: jax.Array, cache: Cache = None) -> jax.Array:
        """``users [B]`` -> ``[B, n_items]`` scores over the catalogue."""
        ...

    def __call__(self, users: jax.Array, items: jax.Array, train: bool = False) -> jax.Array:
        """The entry ``init`` traces (``score``)."""
        ...

    def apply(self, variables: Variables, *args: Any, **kwargs: Any) -> Any:
        """flax's ``apply``: ``model.apply(variables, users, cache, method="score_all")``."""
        ...


@runtime_checkable
class SequenceRecommender(Protocol):
    """A recommender queried by history windows (:mod:`jaxrec.models.sequential`):
    ``history [B, L]`` int32, right-aligned, padded on the left with ``pad = n_items``."""

    n_users: int
    n_items: int
    max_len: int
    query: ClassVar[str]  #: ``"history"``
    objective: ClassVar[str]  #: ``"next"`` | ``"cloze"``

    def embed(self, history: jax.Array) -> jax.Array:
        """``[B, L]`` -> ``[B, L, D]`` input rows (where input-side perturbations act)."""
        ...

    def encode(self, embedded: jax.Array, history: jax.Array, train: bool = False) -> jax.Array:
        """``[B, L, D]`` rows -> ``[B, L, D]`` representations at every position."""
        ...

    def hidden(self, history: jax.Array, train: bool = False) -> jax.Array:
        """``encode(embed(history), history)``."""
        ...

    def embeddings(self, train: bool = False) -> Cache:
        """``{"item": [n_items, D]}``, the output item table."""
        ...

    def score(self, history: jax.Array, items: jax.Array, cache: Cache = None, train: bool = False) -> jax.Array:
        """``history [B, L]``, ``items [B, L, M]`` -> ``[B, L, M]`` scores at every position."""
        ...

    def score_all(self, history: jax.Array, cache: Cache = None) -> jax.Array:
        """``[B, L]`` -> ``[B, n_items]`` scores from the last position."""
        ...

    def logits(self, history: jax.Array, train: bool = False, cache: Cache = None) -> jax.Array:
        """``[B, L, n_items]`` scores at every position (CE losses)."""
        ...

    def query_window(self, history: jax.Array) -> jax.Array:
        """The window the last position is read from."""
        ...

    def query_vectors(self, history: jax.Array) -> jax.Array:
        """``[B, L]`` -> ``[B, D]``, a user's vector (``score_all`` is it times the item table)."""
        ...

    def window_scores(self, embedded: jax.Array, window: jax.Array, cache: Cache = None) -> jax.Array:
        """``score_all`` with the input rows given (perturbed windows)."""
        ...

    def __call__(self, history: jax.Array, items: jax.Array, train: bool = False) -> jax.Array:
        """The entry ``init`` traces (``score``)."""
        ...

    def apply(self, variables: Variables, *args: Any, **kwargs: Any) -> Any:
        """flax's ``apply``."""
        ...


#: what a Recommender (user-id queries) defines (:class:`Recommender`'s methods, less flax's ``apply``)
RECOMMENDER_METHODS = ("__call__", "embeddings", "score", "score_all")
#: what a sequence recommender (history-window queries) defines (:class:`SequenceRecommender`'s)
SEQUENCE_METHODS = (
    "__call__",
    "embed",
    "encode",
    "hidden",
    "embeddings",
    "score",
    "score_all",
    "logits",
    "query_window",
    "query_vectors",
    "window_scores",
)
QUERIES = ("users", "history")  #: a model's ``query``: user ids, or history windows
OBJECTIVES = ("next", "cloze")  #: a sequence model's ``objective``


def _defines(cls: type, method: str) -> bool:
    """Whether ``cls`` (not flax's ``Module`` or ``object``) defines ``method`` as a callable."""
    for k in cls.__mro__:
        if k in (nn.Module, object):
            continue
        if method in vars(k):
            return callable(vars(k)[method])
    return False


def check_contract(cls, what: str = "register_model") -> None:
    """Raise one :class:`JaxrecError` naming what ``cls`` lacks of its contract (the Recommender
    contract, or the sequence contract when ``cls.query == "history"``); ``what`` prefixes the
    message."""
    name = getattr(cls, "__qualname__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise JaxrecError(f"{what}: {cls!r} is not a flax.linen.Module class")
    query = getattr(cls, "query", "users")
    if query not in QUERIES:
        raise JaxrecError(f"{what}: {name}.query must be one of {list(QUERIES)}, got {query!r}")
    sequence = query == "history"
    contract, module = (
        ("the sequence contract", "jaxrec.models.sequential")
        if sequence
        else ("the Recommender contract", "jaxrec.models.base")
    )
    fields = [f.name for f in dataclasses.fields(cls)]
    needed = ["n_users", "n_items", *(["max_len"] if sequence else [])]
    if fields[:2] != ["n_users", "n_items"] or not set(needed) <= set(fields):
        raise JaxrecError(
            f"{what}: {name} must declare the fields {needed} (n_users and n_items first) for {contract} "
            f"({module}); it declares {[f for f in fields if f not in ('parent', 'name')]}"
        )
    missing = [m for m in (SEQUENCE_METHODS if sequence else RECOMMENDER_METHODS) if not _defines(cls, m)]
    if missing:
        raise JaxrecError(f"{what}: {name} lacks {contract}'s {', '.join(missing)} ({module})")
    if sequence and getattr(cls, "objective", None) not in OBJECTIVES:
        raise JaxrecError(
            f"{what}: {name}.objective must be one of {list(OBJECTIVES)} for {contract}, "
            f"got {getattr(cls, 'objective', None)!r}"
        )
