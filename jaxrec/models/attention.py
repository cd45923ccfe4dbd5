"""Attention and the pieces every sequence model shares: masks, softmax attention, the
position-wise feed-forward and the transformer block (pre- or post-layer-norm).

Softmax attention goes through :func:`jax.nn.dot_product_attention` with its ``implementation``
(``xla`` runs everywhere; ``cudnn`` needs a GPU, bfloat16/float16 compute and a head dimension
that is a multiple of 8). Attention dropout needs the attention weights, which that function
does not expose: a training step with ``attn_dropout > 0`` computes the same softmax attention
with an einsum and drops weights (tested equal to the fused path without dropout).

Shapes: ``x [B, L, D]``; ``mask [B, 1, L, L]`` bool, True where query ``t`` may read key ``s``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}  #: ``model.activation`` by name
NORMS = ("pre", "post")  #: layer-norm placement (``model.norm``)
IMPLEMENTATIONS = ("xla", "cudnn")  #: ``jax.nn.dot_product_attention`` implementations (``model.attention``)


def attention_mask(valid: jax.Array, causal: bool) -> jax.Array:
    """``valid [B, L]`` (real positions) -> ``[B, 1, L, L]``: query ``t`` reads key ``s`` when
    ``s`` is real and, with ``causal``, ``s <= t``. A padded query reads itself only (its row is
    never empty, so no NaN; padded outputs are zeroed by the caller)."""
    L = valid.shape[-1]
    m = jnp.broadcast_to(valid[:, None, None, :], (valid.shape[0], 1, L, L))
    if causal:
        m = m & jnp.tril(jnp.ones((L, L), bool))[None, None]
    return m | jnp.eye(L, dtype=bool)[None, None]


def softmax_attention(q, k, v, mask, implementation: str = "xla", dropout_rng=None, rate: float = 0.0):
    """``q, k, v [B, L, N, H]`` -> ``[B, L, N, H]``: ``softmax(q k^T / sqrt(H) masked) v``.

    With ``rate > 0`` and a ``dropout_rng``, the attention weights are dropped (einsum path)."""
    if dropout_rng is None or rate <= 0.0:
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask, implementation=None if implementation == "xla" else implementation
        )
    logits = jnp.einsum("btnh,bsnh->bnts", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    w = jax.nn.softmax(logits, axis=-1)
    keep = jax.random.bernoulli(dropout_rng, 1.0 - rate, w.shape)
    w = jnp.where(keep, w / (1.0 - rate), 0.0).astype(v.dtype)
    return jnp.einsum("bnts,bsnh->btnh", w, v)


class SelfAttention(nn.Module):
    """Multi-head self-attention: ``x [B, L, D]`` -> ``[B, L, D]`` (``heads`` must divide ``D``)."""

    dim: int
    heads: int
    attn_dropout: float = 0.0
    implementation: str = "xla"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, queries, keys, mask, train: bool = False):
        B, L, _ = queries.shape
        H = self.dim // self.heads
        dense = lambda name, bias=True: nn.Dense(self.dim, use_bias=bias, dtype=self.dtype, name=name)  # noqa: E731
        q = dense("query")(queries).reshape(B, L, self.heads, H)
        # no key bias: it adds one constant to a query's logits, which softmax ignores (its
        # gradient is rounding noise, which Adam would amplify into steps)
        k = dense("key", False)(keys).reshape(B, L, self.heads, H)
        v = dense("value")(keys).reshape(B, L, self.heads, H)
        rng = self.make_rng("dropout") if train and self.attn_dropout > 0 else None
        out = softmax_attention(q, k, v, mask, self.implementation, rng, self.attn_dropout)
        return dense("out")(out.reshape(B, L, self.dim))


class FeedForward(nn.Module):
    """Position-wise ``D -> inner -> D`` with the activation and dropout after each layer."""

    dim: int
    inner: int
    dropout: float
    activation: str = "relu"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = ACTIVATIONS[self.activation](nn.Dense(self.inner, dtype=self.dtype)(x))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dropout(self.dropout, deterministic=not train)(nn.Dense(self.dim, dtype=self.dtype)(h))


class TransformerBlock(nn.Module):
    """One block. ``norm="pre"`` is the SASRec code's layout (``kang205/SASRec`` and its PyTorch
    port: ``q = LN(x)``, ``x = q + attn(q, x)``, ``h = LN(x)``, ``x = h + ffn(h)``: both
    residuals add the normalised input); ``"post"`` is RecBole's (``x = LN(x + drop(attn(x)))``,
    ``x = LN(x + ffn(x))``)."""

    dim: int
    heads: int
    inner: int
    dropout: float
    attn_dropout: float
    activation: str = "relu"
    norm: str = "pre"
    implementation: str = "xla"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, train: bool = False):
        attn = SelfAttention(self.dim, self.heads, self.attn_dropout, self.implementation, self.dtype)
        ffn = FeedForward(self.dim, self.inner, self.dropout, self.activation, self.dtype)
        ln = lambda name: nn.LayerNorm(epsilon=1e-8 if self.norm == "pre" else 1e-12, dtype=self.dtype, name=name)  # noqa: E731
        if self.norm == "pre":  # both residuals start from the normalised input, as in the SASRec code
            q = ln("attention_norm")(x)
            x = q + attn(q, x, mask, train)  # the SASRec code drops attention weights only
            h = ln("ffn_norm")(x)
            return h + ffn(h, train)
        x = ln("attention_norm")(x + nn.Dropout(self.dropout, deterministic=not train)(attn(x, x, mask, train)))
        return ln("ffn_norm")(x + ffn(x, train))
