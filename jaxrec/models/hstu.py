"""HSTU (Zhai et al., ICML 2024, "Actions Speak Louder than Words"; the generative recommender of
``meta-recsys/generative-recommenders``) on the sequence contract of
:mod:`jaxrec.models.sequential`.

Each block (pre-norm, residual):

    U, V, Q, K = split(SiLU(W_1 LN(x)))                      [B, L, H, d] each
    A = SiLU(Q K^T + rab(t - s)) / max_len, masked causally   no softmax
    y = W_2 (LN(A V) * U)
    x = x + dropout(y)

``rab`` is a learned bias per relative position ``t - s`` (the position part of the paper's
relative attention bias; there is no time part here, the data sets carry no usable times).
Pointwise SiLU attention is its own einsum (no softmax, so no fused kernel applies).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxrec.models.attention import attention_mask
from jaxrec.models.sequential import SequenceModel


class HSTUBlock(nn.Module):
    """One HSTU block: ``x [B, L, D]``, ``mask [B, 1, L, L]`` -> ``[B, L, D]``."""

    dim: int
    heads: int
    max_len: int
    dropout: float
    attn_dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, train: bool = False):
        B, L, D = x.shape
        H, d = self.heads, self.dim // self.heads
        u, v, q, k = jnp.split(
            nn.silu(nn.Dense(4 * D, dtype=self.dtype, name="uvqk")(nn.LayerNorm(dtype=self.dtype)(x))), 4, -1
        )
        q, k, v = (a.reshape(B, L, H, d) for a in (q, k, v))
        rab = self.param("relative_bias", nn.initializers.zeros, (2 * self.max_len - 1,))
        t = jnp.arange(self.max_len - L, self.max_len)
        bias = rab[(t[:, None] - t[None, :]) + self.max_len - 1].astype(self.dtype)  # [L, L]
        a = (
            nn.silu(jnp.einsum("bthd,bshd->bhts", q, k) + bias) / self.max_len
        )  # max_len, not L: a sliced window computes the same
        a = jnp.where(mask, a, 0.0)
        a = nn.Dropout(self.attn_dropout, deterministic=not train)(a)
        o = jnp.einsum("bhts,bshd->bthd", a, v).reshape(B, L, D)
        y = nn.Dense(D, dtype=self.dtype, name="out")(nn.LayerNorm(dtype=self.dtype, name="attention_norm")(o) * u)
        return x + nn.Dropout(self.dropout, deterministic=not train)(y)


class HSTU(SequenceModel):
    """HSTU blocks on the sequence contract (causal; item table tied with the output). The
    paper's ML-1M settings: 8 blocks, 2 heads, ``d_qk = d_v = 25``, embedding 50, length 200."""

    def make_blocks(self):
        rate = self.dropout if self.attn_dropout < 0 else self.attn_dropout
        return [
            HSTUBlock(self.dim, self.heads, self.max_len, self.dropout, rate, self.dtype) for _ in range(self.layers)
        ]

    def encode(self, embedded, history, train: bool = False):
        valid = history != self.pad
        L = history.shape[-1]
        x = embedded.astype(self.dtype) * jnp.sqrt(jnp.asarray(self.dim, self.dtype))
        x = x + self.position[self.max_len - L :].astype(self.dtype)
        x = self.input_dropout(x, deterministic=not train) * valid[..., None]
        mask = attention_mask(valid, causal=True)
        for block in self.blocks:
            x = block(x, mask, train) * valid[..., None]
        return self.final_norm(x)
