"""Sequence recommenders: a model whose *query* is a user's history window, not a user id.

The sequence contract (next to the Recommender contract of :mod:`jaxrec.models.base`):

* the query is ``history [B, L]`` int32, the user's most recent ``L <= max_len`` items,
  right-aligned, padded on the left with the reserved id ``pad = n_items`` (never scored);
* ``embed(history) -> [B, L, D]`` -- the gathered input rows of the item table (where
  input-side perturbations act); ``encode(embedded, history, train) -> [B, L, D]`` -- the
  representation at every position (position ``t`` reads positions ``<= t`` in a causal model);
  ``hidden(history)`` is the two composed;
* ``embeddings()`` -> ``{"item": [n_items, D]}``, the output item table (the cache);
  ``score_all(history, cache) -> [B, n_items]`` scores the catalogue from the last position;
  ``score(history, items [B, L, M]) -> [B, L, M]`` scores given items at every position
  (sampled-negative losses);
* class attributes ``query = "history"`` and ``objective``: ``"next"`` (the next item at every
  position: SASRec, HSTU) or ``"cloze"`` (masked items: BERT4Rec).

Item tables live under ``params["params"]["embeddings"]``: ``item [n_items + 1 (+1), D]`` (the
last rows are the padding id and, for BERT4Rec, the mask id) and, when the output table is not
tied, ``item_out [n_items, D]``. A window narrower than ``max_len`` (length buckets) keeps the
positions of the last slots, so the model computes the same thing on a sliced window.

Models: SASRec (Kang & McAuley, ICDM 2018; gSASRec, Petrov & Macdonald, RecSys 2023, is SASRec
with ``tied: false`` and the gBCE loss) and BERT4Rec (Sun et al., CIKM 2019); HSTU is
:mod:`jaxrec.models.hstu`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.models.attention import TransformerBlock, attention_mask
from jaxrec.models.base import EMBEDDINGS, EmbeddingTables


def is_sequential(model) -> bool:
    """Whether ``model`` (a module or its class) follows the sequence contract."""
    return getattr(model, "query", "users") == "history"


class SequenceModel(nn.Module):
    """What every sequence model shares: the item tables, the output scores and the hooks.
    Subclasses define ``blocks`` (a list of modules called as ``block(x, mask, train)``) and
    may override ``encode``."""

    n_users: int
    n_items: int
    dim: int = 50
    layers: int = 2  #: blocks
    heads: int = 1
    inner: int = 0  #: feed-forward width (0: ``dim``)
    max_len: int = 50
    dropout: float = 0.5
    attn_dropout: float = -1.0  #: < 0: ``dropout``
    activation: str = "relu"
    norm: str = "pre"  #: pre (the SASRec code) | post (RecBole)
    tied: bool = True  #: the output item table is the input one
    attention: str = "xla"  #: ``jax.nn.dot_product_attention`` implementation
    initializer: str = "xavier_normal"
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32

    query: ClassVar[str] = "history"
    objective: ClassVar[str] = "next"
    causal: ClassVar[bool] = True
    extra_tokens: ClassVar[int] = 1  #: rows after the n_items scored ones (padding; + mask)
    row_local: ClassVar[bool] = False
    dot_product: ClassVar[bool] = True  #: the last position's hidden vector times the output table

    @property
    def pad(self) -> int:
        return self.n_items

    def setup(self):
        shapes = [("item", self.n_items + self.extra_tokens, self.dim)]
        if not self.tied:
            shapes.append(("item_out", self.n_items, self.dim))
        self.tables = EmbeddingTables(tuple(shapes), self.initializer, self.init_std, name=EMBEDDINGS)
        self.position = self.param("position", nn.initializers.normal(0.02), (self.max_len, self.dim))
        self.input_norm = nn.LayerNorm(epsilon=1e-12, dtype=self.dtype)
        self.final_norm = nn.LayerNorm(epsilon=1e-8, dtype=self.dtype)
        self.input_dropout = nn.Dropout(self.dropout)
        self.blocks = self.make_blocks()

    def make_blocks(self):
        rate = self.dropout if self.attn_dropout < 0 else self.attn_dropout
        inner = self.inner or self.dim
        return [
            TransformerBlock(
                self.dim, self.heads, inner, self.dropout, rate, self.activation, self.norm, self.attention, self.dtype
            )
            for _ in range(self.layers)
        ]

    # ---- the hooks --------------------------------------------------------------------------
    def embed(self, history):
        """``history [B, L]`` -> ``[B, L, D]`` gathered rows of the input item table."""
        return self.tables()["item"][history]

    def encode(self, embedded, history, train: bool = False):
        """``embedded [B, L, D]`` (from :meth:`embed`, perhaps perturbed) -> ``[B, L, D]``."""
        valid = history != self.pad
        L = history.shape[-1]
        x = embedded.astype(self.dtype)
        if self.norm == "pre":
            x = x * math.sqrt(self.dim)  # the SASRec code scales the item rows
        x = x + self.position[self.max_len - L :].astype(self.dtype)
        if self.norm == "post":
            x = self.input_norm(x)
        x = self.input_dropout(x, deterministic=not train) * valid[..., None]
        mask = attention_mask(valid, self.causal)
        for block in self.blocks:
            x = block(x, mask, train) * valid[..., None]
        return self.final_norm(x) if self.norm == "pre" else x

    def hidden(self, history, train: bool = False):
        return self.encode(self.embed(history), history, train)

    def embeddings(self, train: bool = False):
        """The output item table ``{"item": [n_items, D]}``."""
        tables = self.tables()
        out = tables["item"][: self.n_items] if self.tied else tables["item_out"]
        return {"item": out.astype(self.dtype)}

    def query_window(self, history):
        """The window the last position is read from (BERT4Rec appends its mask token)."""
        return history

    def query_vectors(self, history):
        """``history [B, L]`` -> ``[B, D]``: the last position's hidden vector, a user's
        embedding (its dot product with :meth:`embeddings`' table is :meth:`score_all`)."""
        return self.hidden(self.query_window(history))[:, -1]

    def score_all(self, history, cache=None):
        """``history [B, L]`` -> ``[B, n_items]`` scores from the last position."""
        cache = self.embeddings() if cache is None else cache
        return (self.query_vectors(history) @ cache["item"].T).astype(jnp.float32)

    def window_scores(self, embedded, window, cache=None):
        """``embedded [B, L, D]`` (:meth:`embed` of ``window [B, L]``, a :meth:`query_window`,
        perhaps perturbed) -> ``[B, n_items]`` scores from the last position: :meth:`score_all`
        with the input rows given."""
        cache = self.embeddings() if cache is None else cache
        return (self.encode(embedded, window)[:, -1] @ cache["item"].T).astype(jnp.float32)

    def _hidden_of(self, history, embedded, train: bool):
        if embedded is None:
            return self.hidden(history, train)
        return self.encode(embedded, history, train)

    def score(self, history, items, cache=None, train: bool = False, embedded=None):
        """``history [B, L]``, ``items [B, L, M]`` -> ``[B, L, M]`` scores at every position.
        ``embedded [B, L, D]``: the input rows to encode instead of :meth:`embed` of ``history``
        (perturbed or mixed inputs, :mod:`jaxrec.adversarial.windows`)."""
        cache = self.embeddings(train) if cache is None else cache
        h = self._hidden_of(history, embedded, train)
        return jnp.einsum("bld,blmd->blm", h, cache["item"][items]).astype(jnp.float32)

    def logits(self, history, train: bool = False, cache=None, embedded=None):
        """``[B, L, n_items]`` scores of the whole catalogue at every position (CE losses);
        ``embedded`` as in :meth:`score`."""
        cache = self.embeddings(train) if cache is None else cache
        return (self._hidden_of(history, embedded, train) @ cache["item"].T).astype(jnp.float32)

    def __call__(self, history, items, train: bool = False):
        return self.score(history, items, train=train)


class SASRec(SequenceModel):
    """SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history, learned
    positions, the item table shared with the output (``tied``). The paper's settings are 2
    blocks, 1 head, hidden 50, ``max_len`` 50 (200 for MovieLens), dropout 0.5 (0.2 for ML-1M).
    ``norm: post`` with ``activation: gelu`` is RecBole's SASRec."""


class BERT4Rec(SequenceModel):
    """BERT4Rec (Sun et al., CIKM 2019): bidirectional blocks trained by Cloze masking (a share
    ``mask_prob`` of the real positions replaced by the mask token ``n_items + 1``, CE at those
    positions); at test time the mask token is appended after the history and read out."""

    mask_prob: float = 0.2
    norm: str = "post"
    activation: str = "gelu"

    objective: ClassVar[str] = "cloze"
    causal: ClassVar[bool] = False
    extra_tokens: ClassVar[int] = 2

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    def query_window(self, history):
        tail = jnp.full(history.shape[:-1] + (1,), self.mask_token, history.dtype)
        return jnp.concatenate([history[..., 1:], tail], axis=-1)


def cloze(key: jax.Array, window, pad: int, mask_token: int, prob: float):
    """Cloze inputs of ``window [B, L]``: each real position masked with probability ``prob``,
    and the last real position always (so every window has a target, and the test-time query --
    a mask after the history -- is among the training cases). Returns ``(inputs [B, L], labels
    [B, L])`` with ``labels`` the original item where masked, ``pad`` elsewhere."""
    real = window != pad
    masked = real & jax.random.bernoulli(key, prob, window.shape)
    masked = masked.at[:, -1].set(real[:, -1])
    return jnp.where(masked, mask_token, window), jnp.where(masked, window, pad)
