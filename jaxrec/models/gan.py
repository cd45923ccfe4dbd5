"""Generator and discriminator over user-behaviour vectors, and CFGAN as a Recommender.

The seed's GAN (Goodfellow et al., NeurIPS 2014) over users: a user is an interaction vector
``x [n_items]`` in ``[0, 1]`` (1 = interacted). The generator G maps noise ``z [B, noise_dim]``
(and, in conditional mode, a condition ``c [B, n_items]``) to an invented user ``G(z, c)
[B, n_items]`` in ``[0, 1]``; the discriminator D maps an interaction vector (and ``c``) to the
*logit* of "this user is real", ``[B]`` (``sigmoid`` of it is the probability; losses use the
logit for numerically stable binary cross-entropy).

Default architecture (the seed's): G is an MLP noise -> 256 -> 512 -> 1024 -> items with
LeakyReLU(0.2) and a sigmoid output; D is items -> 256 -> 512 -> 1024 -> 1 with LeakyReLU(0.2)
and Dropout(0.3) after every hidden layer, one output logit. Both are configurable. Options:
G's second head writes a rating per item (``rating_levels = K``: values in ``[1, K]``, as AUSH's
generator rates its filler, Lin et al. CIKM 2020); D's minibatch standard deviation feature
(Karras et al., ICLR 2018) appends the batch's mean feature std to the last hidden layer, so D can
see a batch of too-similar users (mode collapse); :meth:`Discriminator.features` is that layer
(G's feature-matching target, Salimans et al., NeurIPS 2016).

CFGAN (Chae et al., CIKM 2018) is the conditional mode: the condition ``c_u`` is user u's real
purchase vector, G(z, c_u) is a vector of purchase probabilities ``r̂_u``, and D judges
``(r̂_u ⊙ mask, c_u)`` against ``(e_u, c_u)`` (see :mod:`jaxrec.adversarial.gan_training` for the
masks). :class:`CFGAN` wraps a trained conditional generator in the Recommender contract
(:mod:`jaxrec.models.base`) so the shared full-ranking evaluator ranks its output: the user-item
training matrix is a non-trainable ``"data"`` collection, and ``score_all(users)`` is G's output for
those users conditioned on their training vectors with the noise at its mean (``z = 0``), so
rankings are deterministic. (With ``noise_dim = 0`` G is a deterministic function of ``c_u`` -- the
original CFGAN code feeds no noise, which is why CFGAN behaves like an autoencoder; Ferrari Dacrema
et al., ECIR 2022.)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrec.errors import JaxrecError

G_HIDDEN = (256, 512, 1024)  #: the seed's generator hidden sizes
D_HIDDEN = (256, 512, 1024)  #: the seed's discriminator hidden sizes
LEAK = 0.2  #: LeakyReLU negative slope
RATING_HEADS = ("mean", "categorical")  #: how G writes ratings (:class:`Generator`)


class Generator(nn.Module):
    """G: noise ``z [B, noise_dim]`` (and condition ``c [B, n_items]``) -> ``[B, n_items]`` in [0, 1].

    Attributes:
      n_items: output size (the catalogue).
      hidden: hidden layer sizes, LeakyReLU(0.2) after each.
      conditional: when True the input is ``concat(c, z)`` (CFGAN), else ``z`` alone.
      rating_levels: ``K > 0`` adds a rating head (0: no ratings); :meth:`heads` also returns
        ``[B, n_items]`` ratings in ``[1, K]`` (``1 + (K - 1) sigmoid``; ``rating_head="mean"``) or
        ``[B, n_items, K]`` logits over the levels (``"categorical"``).

    ``noise_dim`` is not an attribute: it is ``z.shape[-1]`` and may be 0 in conditional mode.
    """

    n_items: int
    hidden: tuple[int, ...] = G_HIDDEN
    conditional: bool = False
    rating_levels: int = 0
    rating_head: str = "mean"

    def setup(self):
        self.layers = [nn.Dense(w, name=f"hidden_{i}") for i, w in enumerate(self.hidden)]
        self.out = nn.Dense(self.n_items, name="out")
        if self.rating_levels:
            width = self.n_items * (self.rating_levels if self.rating_head == "categorical" else 1)
            self.rating_out = nn.Dense(width, name="ratings")

    def _trunk(self, z, c):
        h = _with_condition(z, c, self.conditional, "generator")
        for layer in self.layers:
            h = nn.leaky_relu(layer(h), LEAK)
        return h

    def logits(self, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """Pre-sigmoid output ``[B, n_items]``."""
        return self.out(self._trunk(z, c))

    def heads(self, z: jax.Array, c: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
        """``(logits [B, n_items], ratings)`` from one trunk pass: ratings ``[B, n_items]`` in
        ``[1, K]``, ``[B, n_items, K]`` level logits (categorical), or None."""
        h = self._trunk(z, c)
        if not self.rating_levels:
            return self.out(h), None
        r = self.rating_out(h)
        if self.rating_head == "categorical":
            return self.out(h), r.reshape(r.shape[:-1] + (self.n_items, self.rating_levels))
        return self.out(h), 1.0 + (self.rating_levels - 1) * jax.nn.sigmoid(r)

    def __call__(self, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        return jax.nn.sigmoid(self.logits(z, c))


class Discriminator(nn.Module):
    """D: ``x [B, n_items]`` (and condition ``c [B, n_items]``) -> logit of "real" ``[B]``.

    Attributes:
      hidden: hidden layer sizes, each followed by LeakyReLU(0.2) and Dropout(``dropout``).
      dropout: dropout rate (active when ``train=True``; needs an rng stream ``"dropout"``).
      conditional: when True the input is ``concat(x, c)`` (CFGAN), else ``x`` alone.
      minibatch_std: append the minibatch standard deviation feature (Karras et al. 2018) to the
        last hidden layer: the mean over features of their std over the batch's rows (``mask``
        ``[B]`` leaves padding rows out).
    """

    hidden: tuple[int, ...] = D_HIDDEN
    dropout: float = 0.3
    conditional: bool = False
    minibatch_std: bool = False

    def setup(self):
        self.layers = [nn.Dense(w, name=f"hidden_{i}") for i, w in enumerate(self.hidden)]
        # one dropout module per layer, named as @nn.compact names them (their rngs follow the names)
        self.drops = [nn.Dropout(self.dropout, name=f"Dropout_{i}") for i in range(len(self.hidden))]
        self.out = nn.Dense(1, name="out")

    def features(self, x: jax.Array, c: jax.Array | None = None, train: bool = False) -> jax.Array:
        """The last hidden layer ``[B, hidden[-1]]`` (after LeakyReLU and dropout)."""
        h = _with_condition(x, c, self.conditional, "discriminator")
        for layer, drop in zip(self.layers, self.drops):
            h = drop(nn.leaky_relu(layer(h), LEAK), deterministic=not train)
        return h

    def __call__(
        self, x: jax.Array, c: jax.Array | None = None, train: bool = False, mask: jax.Array | None = None
    ) -> jax.Array:
        h = self.features(x, c, train)
        if self.minibatch_std:
            h = jnp.concatenate([h, jnp.broadcast_to(minibatch_std(h, mask), h.shape[:1])[:, None]], axis=-1)
        return self.out(h)[..., 0]

    def prob(self, x: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """``sigmoid(D(x, c))`` ``[B]``: the probability of being real (no dropout)."""
        return jax.nn.sigmoid(self(x, c, train=False))


def minibatch_std(h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``[]`` the mean over features of the (masked) standard deviation over rows of ``h [B, F]``."""
    w = jnp.ones(h.shape[:1], h.dtype) if mask is None else mask.astype(h.dtype)
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.sum(h * w[:, None], axis=0) / n
    var = jnp.sum(jnp.square(h - mean) * w[:, None], axis=0) / n
    return jnp.mean(jnp.sqrt(var + 1e-8))


def _with_condition(x, c, conditional: bool, who: str):
    if not conditional:
        return x
    if c is None:
        raise JaxrecError(f"the {who} is conditional but got no condition c")
    return jnp.concatenate([c.astype(x.dtype), x], axis=-1)  # [B, n_items + width of x]


def init_generator(g: Generator, key: jax.Array, noise_dim: int) -> dict:
    """``{"params": ...}`` of ``g`` for inputs ``z [1, noise_dim]`` (and ``c [1, n_items]``)."""
    z = jnp.zeros((1, noise_dim), jnp.float32)
    c = jnp.zeros((1, g.n_items), jnp.float32) if g.conditional else None
    return {"params": g.init(key, z, c, method=Generator.heads)["params"]}


def init_discriminator(d: Discriminator, key: jax.Array, n_items: int) -> dict:
    """``{"params": ...}`` of ``d`` for inputs ``x [1, n_items]`` (and ``c [1, n_items]``)."""
    x = jnp.zeros((1, n_items), jnp.float32)
    c = x if d.conditional else None
    return {"params": d.init(key, x, c)["params"]}


class CFGAN(nn.Module):
    """A trained CFGAN generator as a Recommender (Chae et al., CIKM 2018).

    Variables: ``{"params": {"generator": <Generator params>}, "data": {"purchases":
    [n_users, n_items] float32}}`` -- build them with :func:`cfgan_variables`. The purchase matrix
    (each user's training vector, the condition ``c_u``) is a non-trainable collection, like
    LightGCN's graph. CFGAN has no embedding tables: the ``embeddings()`` hook returns ``{}`` and
    every score is computed from the user's own training vector.

    ``score_all(users [B]) -> [B, n_items]`` = ``G(z=0, c_u)``; ``score(users [B], items [B] or
    [B, M])`` gathers from it.
    """

    n_users: int
    n_items: int
    hidden: tuple[int, ...] = G_HIDDEN
    noise_dim: int = 0

    def setup(self):
        self.generator = Generator(self.n_items, self.hidden, conditional=True)
        self.purchases = self.variable("data", "purchases", jnp.zeros, (self.n_users, self.n_items), jnp.float32)

    def embeddings(self, train: bool = False):
        """Nothing to precompute: ``{}`` (scores come from each user's training vector)."""
        return {}

    def score_all(self, users: jax.Array, cache=None) -> jax.Array:
        c = self.purchases.value[users]
        z = jnp.zeros((users.shape[0], self.noise_dim), jnp.float32)
        return self.generator(z, c)

    def score(self, users: jax.Array, items: jax.Array, cache=None, train: bool = False) -> jax.Array:
        scores = self.score_all(users)
        if items.ndim == 1:
            return jnp.take_along_axis(scores, items[:, None], axis=1)[:, 0]
        return jnp.take_along_axis(scores, items, axis=1)

    def __call__(self, users, items, train: bool = False):
        return self.score(users, items, train=train)


def cfgan_variables(generator_params: dict, purchases: jax.Array) -> dict:
    """Variables of :class:`CFGAN` from a conditional generator's ``{"params": ...}`` and the
    ``[n_users, n_items]`` training matrix."""
    return {
        "params": {"generator": generator_params["params"]},
        "data": {"purchases": jnp.asarray(purchases, jnp.float32)},
    }
