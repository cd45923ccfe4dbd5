"""NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017): GMF and MLP towers, fused.

* GMF: ``p_u ⊙ q_i`` with tables ``embeddings/user_gmf [n_users, D]``, ``embeddings/item_gmf``.
* MLP: separate tables ``embeddings/user_mlp``, ``embeddings/item_mlp`` (``[*, D]``), the
  concatenation ``[p'_u ; q'_i]`` through ``mlp_layers`` Dense layers, each followed by ReLU and
  dropout (:class:`CounterDropout`: ``flax.linen.Dropout``'s contract with a hash-based mask,
  rng stream ``"dropout"``, active only when ``train=True``).
* Prediction: ``h^T [GMF ; MLP] + b`` -- a logit; ``sigmoid`` of it is the paper's ``ŷ_ui``.
  Trained with BCE on sampled negatives (``train.loss: bce``), as in the paper.

Embeddings use the configured initialiser (the protocol: normal, std 0.01); the dense layers
use :func:`torch_linear_init`, as the peer does. Two exact rewrites keep it fast, both equal to the formulas above:
the first MLP layer on the concatenation is ``W [2D, H1] = [W_u ; W_i]``, so
``[p'_u ; q'_i] W = p'_u W_u + q'_i W_i``: the user half is computed once per user (shared by the
positive and the negatives of a training row, and by all items in ``score_all``) and the item
half once per item in ``score_all``. The GMF half of the prediction is
``sum_d h_d p_ud q_id = (p_u ⊙ h_gmf) · q_i``, a matrix product in ``score_all``.
Only the later MLP layers run on every (user, item) pair: ``score_all`` materialises about
:attr:`NeuMF.pair_width` floats per pair, which the evaluator uses to size its user chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.data.sampling import mix32
from jaxrec.models.base import EMBEDDINGS, EmbeddingTables


def torch_linear_init(fan_in: int):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases: PyTorch's default ``Linear``
    initialisation, which RecBole's NeuMF (the comparison peer) keeps for its dense layers."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def counter_keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """``bool[shape]`` keep mask, ``P(keep) = 1 - rate``, from a counter-based hash.

    Two 32-bit words are drawn from ``key`` (any PRNG implementation); each element's bits are
    two rounds of :func:`jaxrec.data.sampling.mix32` over its flat index mixed with those words. It is one fused
    elementwise kernel: on XLA CPU threefry bits for a ``[2048, 2, 128]`` mask cost more than the
    MLP layer they regularise (bench/README.md). Resolution of ``rate``: ``2**-32``.
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    size = 1
    for d in shape:
        size *= d
    idx = jax.lax.iota(jnp.uint32, size).reshape(shape)
    x = mix32(idx * jnp.uint32(0x9E3779B9) + seed[0])
    x = mix32(x ^ seed[1])
    threshold = jnp.uint32(min(int(round(rate * 2.0**32)), 2**32 - 1))
    return x >= threshold


class CounterDropout(nn.Module):
    """Inverted dropout (Srivastava et al., JMLR 2014) with :func:`counter_keep_mask`.

    Same contract as ``flax.linen.Dropout``: identity unless ``deterministic=False``; the key
    comes from the ``"dropout"`` rng stream; kept values are scaled by ``1 / (1 - rate)``.
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = counter_keep_mask(self.make_rng("dropout"), x.shape, self.rate)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class NeuMF(nn.Module):
    """NeuMF; tables ``user_gmf``, ``item_gmf``, ``user_mlp``, ``item_mlp`` of dim ``dim``."""

    n_users: int
    n_items: int
    dim: int = 64
    mlp_layers: Sequence[int] = (128, 64)
    dropout: float = 0.1
    initializer: str = "normal"
    init_std: float = 0.01
    dtype: jnp.dtype = jnp.float32  #: compute dtype (parameters stay float32)
    row_local: ClassVar[bool] = True  #: see :class:`jaxrec.models.mf.MF`
    dot_product: ClassVar[bool] = False  #: the MLP tower scores a pair, not a dot product

    @property
    def pair_width(self) -> int:
        """Floats ``score_all`` holds per (user, item) pair: the MLP widths (evaluator chunking)."""
        return int(sum(self.mlp_layers)) + 1

    def setup(self):
        d = self.dim
        shapes = (
            ("user_gmf", self.n_users, d),
            ("item_gmf", self.n_items, d),
            ("user_mlp", self.n_users, d),
            ("item_mlp", self.n_items, d),
        )
        self.tables = EmbeddingTables(shapes, self.initializer, self.init_std, name=EMBEDDINGS)
        widths = tuple(self.mlp_layers)

        def dense(width, fan_in, name, bias=True):
            init = torch_linear_init(fan_in)
            return nn.Dense(
                width,
                use_bias=bias,
                kernel_init=init,
                bias_init=init,
                name=name,
                dtype=self.dtype,
                param_dtype=jnp.float32,
            )

        # first layer on [p'_u ; q'_i] (fan-in 2D), split into its user and item halves
        self.mlp_user = dense(widths[0], 2 * d, "mlp_0_user")
        self.mlp_item = dense(widths[0], 2 * d, "mlp_0_item", bias=False)
        self.mlp = [dense(w, widths[k - 1], f"mlp_{k}") for k, w in enumerate(widths[1:], start=1)]
        self.drop = CounterDropout(self.dropout)
        fan_in = d + widths[-1]  # the prediction layer reads [GMF ; MLP]
        self.predict_gmf = self.param("predict_gmf", torch_linear_init(fan_in), (d, 1))
        self.predict_mlp = self.param("predict_mlp", torch_linear_init(fan_in), (widths[-1], 1))
        self.predict_bias = self.param("predict_bias", torch_linear_init(fan_in), (1,))

    def embeddings(self, train: bool = False):
        """The four tables, ``{"user_gmf": [n_users, D], ...}``, in the compute dtype."""
        return jax.tree.map(lambda t: t.astype(self.dtype), self.tables())

    def _tower(self, h, train: bool):
        """``h [..., H1]`` (first-layer pre-activation) -> ``[..., H_last]``."""
        h = self.drop(nn.relu(h), deterministic=not train)
        for layer in self.mlp:
            h = self.drop(nn.relu(layer(h)), deterministic=not train)
        return h

    def score(self, users, items, cache=None, train: bool = False):
        """``users [B]``, ``items [B]`` or ``[B, M]`` -> logits of ``items``' shape."""
        cache = self.embeddings() if cache is None else cache
        flat = items.ndim == 1
        items = items[:, None] if flat else items  # [B, M]
        gmf = cache["user_gmf"][users][:, None, :] * cache["item_gmf"][items]  # [B, M, D]
        h = _project_rows(self.mlp_user, cache["user_mlp"], users)[:, None, :] + _project_rows(
            self.mlp_item, cache["item_mlp"], items
        )  # [B, M, H1]
        mlp = self._tower(h, train)  # [B, M, H_last]
        logits = (
            (gmf @ self.predict_gmf.astype(self.dtype))[..., 0]
            + (mlp @ self.predict_mlp.astype(self.dtype))[..., 0]
            + self.predict_bias.astype(self.dtype)
        )
        return logits[:, 0] if flat else logits

    def score_all(self, users, cache=None):
        """``users [B]`` -> ``[B, n_items]`` logits (MLP evaluated on every pair)."""
        cache = self.embeddings() if cache is None else cache
        gmf = (cache["user_gmf"][users] * self.predict_gmf[:, 0].astype(self.dtype)) @ cache["item_gmf"].T
        h = self.mlp_user(cache["user_mlp"][users])[:, None, :] + self.mlp_item(cache["item_mlp"])[None]
        mlp = (self._tower(h, False) @ self.predict_mlp.astype(self.dtype))[..., 0]  # [B, n_items]
        return gmf + mlp + self.predict_bias.astype(self.dtype)

    def __call__(self, users, items, train: bool = False):
        return self.score(users, items, train=train)


def _project_rows(layer: nn.Module, table: jax.Array, idx: jax.Array) -> jax.Array:
    """``layer(table[idx])``; when ``idx`` has more entries than ``table`` has rows, the whole
    table is projected first and the result gathered (fewer FLOPs, same values)."""
    if idx.size > table.shape[0]:
        return layer(table)[idx]
    return layer(table[idx])
