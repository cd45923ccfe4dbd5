"""A trained model, reloaded from its run: recommendations for raw users, scores, embeddings and
the run's own evaluation (:func:`load_run`).

Users and items go in and come out as the data's raw ids (``split.train.user_ids`` /
``item_ids``). Recommendations are the evaluator's ranking (:func:`jaxrec.evaluate.rank_top`)
over users in fixed-size chunks: one compiled program per chunk shape, memory bounded by the
chunk (``[C, n_items]`` scores), not by the number of users. A sequence model's query is the
user's most recent ``max_len`` events of every stored part (its next item is what is
recommended), or a history of raw item ids given by the caller.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.config import Config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.loaders import concat
from jaxrec.data.sequences import histories, right_aligned, split_order
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import check_ks, compile_evaluator, model_chunk, rank_top, split_ranking
from jaxrec.experiment.saved import load_model
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.models.sequential import is_sequential

EXCLUDE = ("seen", "train", "none")  #: what :meth:`TrainedModel.recommend` leaves out


@dataclasses.dataclass(frozen=True)
class Recommendations:
    """Top-``k`` lists: ``users [U]`` raw ids (None for caller-given histories), ``items [U, k]``
    raw item ids, ``scores [U, k]`` float32, best first. A user with fewer than ``k`` items left
    after the exclusion has ``-inf`` scores at the end of its row."""

    users: np.ndarray | None
    items: np.ndarray
    scores: np.ndarray

    def to_dict(self) -> dict:
        """``{"<raw user>": {"items": [...], "scores": [...]}}`` (finite scores only), JSON-ready."""
        keys = self.users if self.users is not None else np.arange(len(self.items))
        out = {}
        for u, items, scores in zip(keys, self.items, self.scores):
            keep = np.isfinite(scores)
            out[str(u)] = {"items": items[keep].tolist(), "scores": scores[keep].astype(float).tolist()}
        return out

    def rows(self) -> list[dict]:
        """One row per (user, rank): ``user, rank, item, score`` (finite scores only)."""
        keys = self.users if self.users is not None else np.arange(len(self.items))
        return [
            {"user": u.item() if hasattr(u, "item") else u, "rank": r + 1, "item": i.item(), "score": float(s)}
            for u, items, scores in zip(keys, self.items, self.scores)
            for r, (i, s) in enumerate(zip(items, scores))
            if np.isfinite(s)
        ]


@functools.partial(jax.jit, static_argnums=0)
def _cache(model, variables):
    return model.apply(variables, method="embeddings")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _top(model, k, variables, cache, queries, rows, cols):
    scores = model.apply(variables, queries, cache, method="score_all")
    return rank_top(scores, rows, cols, k)


@functools.partial(jax.jit, static_argnums=0)
def _scores(model, variables, cache, queries, items):
    return model.apply(variables, queries, cache, method="score_all")[:, items]


@functools.partial(jax.jit, static_argnums=0)
def _query_vectors(model, variables, queries):
    return model.apply(variables, queries, method="query_vectors")


def _csr(parts: Sequence[Interactions], n_users: int) -> tuple[np.ndarray, np.ndarray]:
    inter = concat(list(parts)) if len(parts) > 1 else parts[0]
    order = np.argsort(inter.users, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(inter.users, minlength=n_users))])
    return indptr, inter.items[order].astype(np.int32)


def _padded(n: int) -> int:
    """Exclusion-list capacity: the next power of two (few distinct shapes, few compilations)."""
    return 1 << max(4, int(n - 1).bit_length())


class TrainedModel:
    """A run's model with its data: see the module docstring. Build it with :func:`load_run`."""

    def __init__(self, config: Config, model, params: dict, inputs: dict, split: Split, meta: dict, run_dir: Path):
        self.config, self.model, self.split, self.meta, self.run_dir = config, model, split, meta, run_dir
        self.variables = {**params, **inputs}
        self.params = params
        self.chunk = config.eval.chunk or model_chunk(model, split.n_items)
        self._index: dict[str, dict] = {}
        self._memo: dict = {}

    # -- ids -------------------------------------------------------------------------------------
    @property
    def user_ids(self) -> np.ndarray:
        """``[n_users]`` raw user ids (index = the model's user index)."""
        return self.split.train.user_ids if self.split.train.user_ids is not None else np.arange(self.split.n_users)

    @property
    def item_ids(self) -> np.ndarray:
        """``[n_items]`` raw item ids."""
        return self.split.train.item_ids if self.split.train.item_ids is not None else np.arange(self.split.n_items)

    @property
    def sequential(self) -> bool:
        return is_sequential(self.model)

    def _lookup(self, kind: str, ids) -> np.ndarray:
        raw = self.user_ids if kind == "user" else self.item_ids
        if kind not in self._index:
            self._index[kind] = {(k.item() if hasattr(k, "item") else k): i for i, k in enumerate(raw)}
        index, numeric = self._index[kind], raw.dtype.kind in "iu"
        out, bad = [], []
        for x in np.atleast_1d(np.asarray(ids, dtype=object)):
            key = x.item() if hasattr(x, "item") else x
            if numeric and isinstance(key, str):
                try:
                    key = int(key)
                except ValueError:
                    pass
            elif not numeric and not isinstance(key, str):
                key = str(key)
            i = index.get(key)
            (bad.append(x) if i is None else out.append(i))
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise JaxrecError(
                f"{kind}s: {shown} not among the {len(raw)} {kind}s of {self.run_dir} (raw ids such as "
                f"{', '.join(map(str, raw[:3]))})"
            )
        return np.asarray(out, np.int64)

    # -- queries ---------------------------------------------------------------------------------
    def _parts(self) -> list[Interactions]:
        return [p for p in (self.split.train, self.split.valid, self.split.test) if p is not None]

    def _windows(self) -> np.ndarray:
        """``[n_users, max_len]`` every user's most recent events of every stored part."""
        if "windows" not in self._memo:
            self._memo["windows"] = histories(self._parts(), split_order(self.split), self.model.max_len)
        return self._memo["windows"]

    def _seen(self, exclude: str) -> tuple[np.ndarray, np.ndarray] | None:
        if exclude not in EXCLUDE:
            raise JaxrecError(f"exclude: {exclude!r} is not one of {list(EXCLUDE)}")
        if exclude == "none":
            return None
        if exclude not in self._memo:
            parts = self._parts() if exclude == "seen" else [self.split.train]
            self._memo[exclude] = _csr(parts, self.split.n_users)
        return self._memo[exclude]

    def _cache(self):
        if "cache" not in self._memo:
            self._memo["cache"] = _cache(self.model, self.variables)
        return self._memo["cache"]

    def _chunks(self, users: np.ndarray, queries: np.ndarray | None):
        """``(lo, hi, padded queries [C, ...])`` over ``users`` (indices) in chunks of ``self.chunk``."""
        c = self.chunk
        for lo in range(0, len(users), c):
            hi = min(lo + c, len(users))
            q = users[lo:hi] if queries is None else queries[lo:hi]
            pad = np.repeat(q[:1], c - (hi - lo), axis=0)
            yield lo, hi, jnp.asarray(np.concatenate([q, pad]).astype(np.int32))

    # -- recommendations -------------------------------------------------------------------------
    def recommend(self, users=None, k: int = 10, exclude: str = "seen", history=None) -> Recommendations:
        """Top-``k`` items for raw ``users`` (default: every user); see :meth:`recommend_chunks`."""
        parts = list(self.recommend_chunks(users, k, exclude, history))
        if not parts:
            return Recommendations(np.asarray([]), np.zeros((0, k)), np.zeros((0, k), np.float32))
        users_out = None if parts[0].users is None else np.concatenate([p.users for p in parts])
        return Recommendations(
            users_out, np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts])
        )

    def recommend_chunks(
        self, users=None, k: int = 10, exclude: str = "seen", history=None
    ) -> Iterator[Recommendations]:
        """Top-``k`` items per user, one :class:`Recommendations` per chunk of users (stream them
        to a file: memory stays bounded by the chunk).

        Args:
          users: raw user ids (default every user); an unknown id is one error naming it.
          k: list length, at most the number of items.
          exclude: ``seen`` leaves out every item the user has in the run's data (training,
            validation and test parts); ``train`` only the training items; ``none`` nothing.
          history: sequence models only: one list of raw item ids per query, oldest first,
            instead of the users' stored histories (``users`` then only labels the rows;
            ``exclude="seen"`` leaves out the given items).
        """
        n_items = self.split.n_items
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_items:
            raise JaxrecError(f"k: must be an integer in [1, {n_items}] (the number of items), got {k!r}")
        k = int(k)
        if history is not None:
            yield from self._recommend_histories(users, k, exclude, history)
            return
        idx = np.arange(self.split.n_users) if users is None else self._lookup("user", users)
        seen = self._seen(exclude)
        queries = self._windows()[idx] if self.sequential else None
        cache = self._cache()
        for lo, hi, q in self._chunks(idx, queries):
            rows, cols = self._exclusions(idx[lo:hi], seen)
            scores, top = _top(self.model, k, self.variables, cache, q, rows, cols)
            yield Recommendations(
                self.user_ids[idx[lo:hi]],
                self.item_ids[np.asarray(top)[: hi - lo]],
                np.asarray(scores, np.float32)[: hi - lo],
            )

    def _exclusions(self, idx: np.ndarray, seen) -> tuple[jax.Array, jax.Array]:
        """(row in chunk, item) pairs to mask for the users ``idx``, padded to a power of two
        with the dropped column ``n_items``."""
        if seen is None:
            rows, cols = np.zeros(0, np.int32), np.zeros(0, np.int32)
        else:
            indptr, items = seen
            counts = indptr[idx + 1] - indptr[idx]
            rows = np.repeat(np.arange(len(idx), dtype=np.int32), counts)
            first = np.repeat(indptr[idx] - np.cumsum(counts) + counts, counts)  # each row's start, minus its offset
            cols = items[first + np.arange(len(rows))]
        cap = _padded(len(rows))
        rows = np.concatenate([rows, np.zeros(cap - len(rows), np.int32)])
        cols = np.concatenate([cols, np.full(cap - len(cols), self.split.n_items, np.int32)])
        return jnp.asarray(rows), jnp.asarray(cols)

    def _recommend_histories(self, users, k: int, exclude: str, history) -> Iterator[Recommendations]:
        if not self.sequential:
            raise JaxrecError(f"history: {self.config.model.name} scores user ids; a history is for sequence models")
        if exclude not in ("seen", "none"):
            raise JaxrecError(f"exclude: with a history, choose 'seen' (its items) or 'none', got {exclude!r}")
        seqs = [self._lookup("item", h) for h in history]
        if any(len(s) == 0 for s in seqs):
            raise JaxrecError("history: an empty history has nothing to recommend from; give at least one item")
        if users is not None and len(np.atleast_1d(users)) != len(seqs):
            raise JaxrecError(f"users: {len(np.atleast_1d(users))} labels for {len(seqs)} histories")
        labels = None if users is None else np.atleast_1d(np.asarray(users))
        indptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
        flat = np.concatenate(seqs).astype(np.int32) if seqs else np.zeros(0, np.int32)
        rows_all = np.arange(len(seqs))
        windows = right_aligned(indptr, flat, indptr[1:], rows_all, self.model.max_len, self.split.n_items)
        seen = (indptr, flat) if exclude == "seen" else None
        cache = self._cache()
        for lo, hi, q in self._chunks(rows_all, windows):
            rows, cols = self._exclusions(rows_all[lo:hi], seen)
            scores, top = _top(self.model, k, self.variables, cache, q, rows, cols)
            yield Recommendations(
                None if labels is None else labels[lo:hi],
                self.item_ids[np.asarray(top)[: hi - lo]],
                np.asarray(scores, np.float32)[: hi - lo],
            )

    # -- scores and embeddings -------------------------------------------------------------------
    def score(self, users, items) -> np.ndarray:
        """``[len(users), len(items)]`` float32 scores of raw ``items`` for raw ``users``."""
        idx, cols = self._lookup("user", users), jnp.asarray(self._lookup("item", items))
        queries = self._windows()[idx] if self.sequential else None
        cache = self._cache()
        out = [
            np.asarray(_scores(self.model, self.variables, cache, q, cols), np.float32)[: hi - lo]
            for lo, hi, q in self._chunks(idx, queries)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(cols)), np.float32)

    def _dot_product(self, what: str) -> None:
        if not getattr(self.model, "dot_product", False):
            warnings.warn(
                f"{self.config.model.name} does not score by a dot product: its {what} are its tables side by "
                "side, not vectors whose dot product is its score",
                stacklevel=3,
            )

    def user_embeddings(self) -> np.ndarray:
        """``[n_users, D]`` float32: the model's final user representations (a sequence model's:
        the last position's hidden vector of the user's stored history). For the models with
        ``dot_product`` (MF, LightGCN, NGCF, the sequence models) ``user_embeddings() @
        item_embeddings().T`` is the score."""
        self._dot_product("user embeddings")
        if self.sequential:
            idx = np.arange(self.split.n_users)
            out = [
                np.asarray(_query_vectors(self.model, self.variables, q), np.float32)[: hi - lo]
                for lo, hi, q in self._chunks(idx, self._windows())
            ]
            return np.concatenate(out)
        cache = self._cache()
        return np.concatenate([np.asarray(v, np.float32) for k, v in cache.items() if k.startswith("user")], axis=1)

    def item_embeddings(self) -> np.ndarray:
        """``[n_items, D]`` float32: the final item representations (a sequence model's output table)."""
        self._dot_product("item embeddings")
        cache = self._cache()
        return np.concatenate([np.asarray(v, np.float32) for k, v in cache.items() if k.startswith("item")], axis=1)

    def export(self, path: str | Path) -> Path:
        """Write the embeddings and raw ids to ``path`` (``.npz`` or ``.parquet``), as ``jaxrec
        export`` does (:func:`jaxrec.experiment.exports.write_embeddings`)."""
        from jaxrec.experiment.exports import write_embeddings  # exports builds on this module

        return write_embeddings(self, path)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, part: str = "test", ks: Sequence[int] | None = None) -> dict:
        """The run's evaluation of ``part`` (``test`` or ``valid``), as training computed it
        (same ranking data, chunking and protocol): the test metrics equal ``metrics.json``'s."""
        if part not in ("test", "valid") or getattr(self.split, part) is None:
            raise JaxrecError(
                f"part: {part!r} is not a part of this run's split (test{', valid' if self.split.valid else ''})"
            )
        ks = check_ks(tuple(ks or self.config.eval.ks), self.split.n_items)
        chunk = self.config.eval.chunk or model_chunk(self.model, self.split.n_items, 1)
        ranking = split_ranking(self.split, part, chunk, **ranking_settings(self.config, self.model))
        return compile_evaluator(self.model, self.variables, ranking, ks)(self.variables, ranking)

    def __repr__(self) -> str:
        return (
            f"TrainedModel({self.config.model.name}, {self.split.n_users} users, {self.split.n_items} items, "
            f"epoch {self.meta.get('epoch')}, {self.run_dir})"
        )


def load_run(path: str | Path) -> TrainedModel:
    """The model a ``jaxrec train`` run saved in ``path`` (``runs/<name>``), ready to recommend,
    score, export its embeddings and re-evaluate. A directory without a saved model, or one saved
    in another format, is one :class:`~jaxrec.errors.JaxrecError`."""
    run_dir = Path(path)
    cfg, model, params, inputs, split, meta = load_model(run_dir)
    return TrainedModel(cfg, model, params, inputs, split, meta, run_dir)
