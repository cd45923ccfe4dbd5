"""Adversarial training of a generator G and a discriminator D over user vectors.

The seed's minimax game (Goodfellow et al., NeurIPS 2014)::

    L(G, D) = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]

D minimises ``L``; G maximises it, i.e. minimises ``E_z[log(1 - D(G(z)))]`` (``minimax``), or, with
``non_saturating``, minimises ``-E_z[log D(G(z))]`` (Goodfellow et al.'s practical variant: same fixed
point, strong gradients early in training). All losses take D's *logits*:
``-log D = softplus(-l)`` and ``-log(1 - D) = softplus(l)``.

Conditional mode is CFGAN (Chae et al., CIKM 2018): the condition of user u is its real purchase
vector ``c_u = e_u``; D sees the real pair ``(e_u, c_u)`` and the fake pair
``(G(z, c_u) ⊙ mask_u, c_u)`` with

* ``mask_u = e_u`` (basic CFGAN: only the purchased positions of G's output are judged),
* ``mask_u = e_u + k_u`` with partial masking (PM): ``k_u`` a random sample of u's non-purchased
  items (each independently with probability ``pm_ratio``), so G is pushed towards 0 there;
* zero reconstruction (ZR) adds ``zr_alpha * sum_{j in ZR_u} G(z, c_u)_j^2`` to G's loss over
  another random sample ``ZR_u`` of non-purchased items (probability ``zr_ratio``).

(The samples are drawn per step with independent Bernoulli draws, so their size is
``ratio * |non-purchased|`` in expectation rather than exactly; the original code draws a
fixed-size sample once per epoch.)

State and steps. :class:`GANState` is a small pytree holding G's and D's
:class:`~jaxrec.train.state.TrainState` and a typed key. Every step is pure,
``step(state, batch) -> (state, metrics)``, and all randomness is ``fold_in(key, step)``: a D step
draws from ``fold_in(state.d.key, state.d.step)``, a G step from ``fold_in(state.g.key,
state.g.step)``, an epoch's shuffle from ``fold_in(state.key, state.g.step)``. One GAN step runs
``d_steps`` D steps (``lax.scan``, fresh noise/masks/dropout each) then one G step on a batch of
users; an epoch is one ``lax.scan`` of GAN steps over fixed-shape, shuffled batches of users.
The steps are plain pure functions of ``(state, batch)`` with no Python branching on traced
values, so they can be jitted, vmapped over seeds or sharded without change; epochs and training
are in :mod:`jaxrec.adversarial.gan_training`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxrec.errors import JaxrecError
from jaxrec.models.gan import Discriminator, Generator, init_discriminator, init_generator
from jaxrec.train.state import TrainState

# fold_in tags separating the random streams inside one step
_NOISE, _MASK_PM, _MASK_ZR, _DROP_REAL, _DROP_FAKE, _SHUFFLE = range(6)


# ------------------------------------------------------------------------------------------------
# losses (on D's logits)
def d_loss_terms(real_logits: jax.Array, fake_logits: jax.Array, mask: jax.Array) -> tuple:
    """The seed's ``L(G, D) = -E[log D(x)] - E[log(1 - D(G(z)))]`` as its two terms.

    Args:
      real_logits, fake_logits: ``[B]`` D's logits on real and generated users.
      mask: ``[B]`` 1 for real rows of the batch, 0 for padding.
    Returns ``(loss_real, loss_fake)``, masked means of ``softplus(-l_real)`` and
    ``softplus(l_fake)``; ``L = loss_real + loss_fake``.
    """
    n = jnp.maximum(jnp.sum(mask), 1.0)
    real = jnp.sum(jax.nn.softplus(-real_logits) * mask) / n
    fake = jnp.sum(jax.nn.softplus(fake_logits) * mask) / n
    return real, fake


def g_adversarial_loss(fake_logits: jax.Array, mask: jax.Array, non_saturating: bool) -> jax.Array:
    """G's adversarial loss from D's logits on its samples ``[B]`` (masked mean).

    ``minimax``: ``E[log(1 - D(G(z)))] = -E[softplus(l)]`` (the seed's game);
    ``non_saturating``: ``-E[log D(G(z))] = E[softplus(-l)]``.
    """
    n = jnp.maximum(jnp.sum(mask), 1.0)
    per = jax.nn.softplus(-fake_logits) if non_saturating else -jax.nn.softplus(fake_logits)
    return jnp.sum(per * mask) / n


# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GANSpec:
    """Static description of a GAN run (hashable; closed over by the jitted steps).

    Attributes:
      n_items: size of a user vector.
      noise_dim: size of z (may be 0 when ``conditional``).
      conditional: CFGAN mode (condition = the user's purchase vector, masks below).
      non_saturating: G minimises ``-log D(G(z))`` instead of ``log(1 - D(G(z)))``.
      d_steps: D steps per G step (k).
      pm, pm_ratio: partial masking and the share of non-purchased items sampled into ``k_u``.
      zr, zr_ratio, zr_alpha: zero reconstruction, its sample share and weight α.
    """

    n_items: int
    noise_dim: int = 128
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    dropout: float = 0.3
    conditional: bool = False
    non_saturating: bool = False
    d_steps: int = 1
    pm: bool = True
    pm_ratio: float = 0.7
    zr: bool = True
    zr_ratio: float = 0.7
    zr_alpha: float = 0.1

    def __post_init__(self):
        # messages name the field; the experiment layer prefixes the config section
        if self.n_items < 1:
            raise JaxrecError(f"n_items must be >= 1, got {self.n_items}")
        if self.noise_dim < 0 or (self.noise_dim == 0 and not self.conditional):
            raise JaxrecError(
                f"noise_dim: must be >= 1 (0 is allowed only when conditional), got {self.noise_dim}"
            )
        if self.d_steps < 1:
            raise JaxrecError(f"d_steps must be >= 1, got {self.d_steps}")
        if not 0.0 <= self.dropout < 1.0:
            raise JaxrecError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("pm_ratio", "zr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise JaxrecError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.zr_alpha < 0:
            raise JaxrecError(f"zr_alpha must be >= 0, got {self.zr_alpha}")
        for name in ("g_hidden", "d_hidden"):
            if any(h < 1 for h in getattr(self, name)):
                raise JaxrecError(f"{name}: hidden sizes must be >= 1, got {getattr(self, name)}")

    @property
    def generator(self) -> Generator:
        return _modules(self)[0]

    @property
    def discriminator(self) -> Discriminator:
        return _modules(self)[1]


@functools.lru_cache(maxsize=None)
def _modules(spec: GANSpec) -> tuple[Generator, Discriminator]:
    """One G and one D instance per (equal) spec: their bound ``apply`` is the static
    ``apply_fn`` of the train states, and equal states must hash equal or ``jit`` retraces."""
    return (
        Generator(spec.n_items, tuple(spec.g_hidden), spec.conditional),
        Discriminator(tuple(spec.d_hidden), spec.dropout, spec.conditional),
    )


class GANState(flax.struct.PyTreeNode):
    """G's and D's train states plus the key for epoch-level randomness (a pytree).

    Attributes:
      g: TrainState of :class:`~jaxrec.models.gan.Generator` (``params = {"params": ...}``).
      d: TrainState of :class:`~jaxrec.models.gan.Discriminator`.
      key: typed key; an epoch shuffles users with ``fold_in(key, g.step)``.
    """

    g: TrainState
    d: TrainState
    key: jax.Array


def create_gan_state(
    spec: GANSpec,
    key: jax.Array,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
) -> GANState:
    """Initialise G and D from one typed key (split into init and step keys for each); one
    compiled program per (spec, optimisers)."""
    return _create_gan_state(spec, g_tx, d_tx, key)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _create_gan_state(spec: GANSpec, g_tx, d_tx, key: jax.Array) -> GANState:
    kg, kd, kgs, kds, ke = jax.random.split(key, 5)
    g_params = init_generator(spec.generator, kg, spec.noise_dim)
    d_params = init_discriminator(spec.discriminator, kd, spec.n_items)
    # steps as int32 arrays, as after a step (one jit signature); two buffers (both are donated)
    g = TrainState.create(apply_fn=spec.generator.apply, params=g_params, tx=g_tx, key=kgs)
    g = g.replace(step=jnp.zeros((), jnp.int32))
    d = TrainState.create(apply_fn=spec.discriminator.apply, params=d_params, tx=d_tx, key=kds)
    d = d.replace(step=jnp.zeros((), jnp.int32))
    return GANState(g=g, d=d, key=ke)


@functools.lru_cache(maxsize=64)
def adam(lr: float, b1: float = 0.5) -> optax.GradientTransformation:
    """Adam with β1 = 0.5 by default (the usual GAN setting, Radford et al., ICLR 2016).

    Cached per ``(lr, b1)``: the optimiser is a static field of the train state, so equal
    settings must give the same object for ``jit`` to reuse its compilation."""
    if not lr > 0:
        raise JaxrecError(f"gan learning rate must be > 0, got {lr}")
    return optax.adam(lr, b1=b1)


# ------------------------------------------------------------------------------------------------
class GANBatch(NamedTuple):
    """A batch of real users: ``real [B, n_items]`` in {0, 1} (also CFGAN's condition),
    ``mask [B]`` (0 on padding rows)."""

    real: jax.Array
    mask: jax.Array


def sample_noise(key: jax.Array, batch: int, noise_dim: int) -> jax.Array:
    """``z ~ N(0, I)``, ``[batch, noise_dim]``."""
    return jax.random.normal(key, (batch, noise_dim), jnp.float32)


def nonpurchased_sample(key: jax.Array, real: jax.Array, ratio: float) -> jax.Array:
    """``[B, n_items]`` 0/1: each item with ``real == 0`` kept with probability ``ratio``
    (CFGAN's ``k_u`` / ``ZR_u``; Chae et al. 2018)."""
    draw = jax.random.bernoulli(key, ratio, real.shape)
    return jnp.where(real > 0, 0.0, draw.astype(jnp.float32))


def fake_users(spec: GANSpec, g_params, key: jax.Array, real: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """G's users for a batch and what D sees of them.

    Args:
      real: ``[B, n_items]`` the batch's real users (CFGAN's condition; only its shape is used
        unconditionally).
    Returns ``(generated [B, n], shown_to_d [B, n], zr_mask [B, n])``: unconditionally
    ``shown_to_d = generated``; for CFGAN ``generated ⊙ (e_u [+ k_u])`` and the ZR sample (zeros
    when ZR is off).
    """
    b = real.shape[0]
    z = sample_noise(jax.random.fold_in(key, _NOISE), b, spec.noise_dim)
    cond = real if spec.conditional else None
    generated = spec.generator.apply(g_params, z, cond)
    if not spec.conditional:
        return generated, generated, jnp.zeros_like(generated)
    mask = real
    if spec.pm:
        mask = mask + nonpurchased_sample(jax.random.fold_in(key, _MASK_PM), real, spec.pm_ratio)
    zr_mask = (
        nonpurchased_sample(jax.random.fold_in(key, _MASK_ZR), real, spec.zr_ratio)
        if spec.zr
        else jnp.zeros_like(real)
    )
    return generated, generated * mask, zr_mask


def make_d_step(spec: GANSpec) -> Callable:
    """``d_step(state, batch) -> (state, metrics)``: one update of D on the seed's loss.

    G's samples are drawn with ``fold_in(state.d.key, state.d.step)`` and held fixed
    (``stop_gradient``); D's dropout uses separate streams for the real and fake passes.
    Metrics: ``d_loss`` (= L(G, D)), ``d_real``, ``d_fake`` (mean D probabilities, from the
    training pass, dropout on).
    """
    disc = spec.discriminator

    def d_step(state: GANState, batch: GANBatch):
        key = jax.random.fold_in(state.d.key, state.d.step)
        _, shown, _ = fake_users(spec, state.g.params, key, batch.real)
        shown = jax.lax.stop_gradient(shown)
        cond = batch.real if spec.conditional else None

        def loss_fn(d_params):
            lr = disc.apply(d_params, batch.real, cond, train=True,
                            rngs={"dropout": jax.random.fold_in(key, _DROP_REAL)})
            lf = disc.apply(d_params, shown, cond, train=True,
                            rngs={"dropout": jax.random.fold_in(key, _DROP_FAKE)})
            real, fake = d_loss_terms(lr, lf, batch.mask)
            return real + fake, (lr, lf)

        (loss, (lr, lf)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d.params)
        n = jnp.maximum(jnp.sum(batch.mask), 1.0)
        metrics = {
            "d_loss": loss,
            "d_real": jnp.sum(jax.nn.sigmoid(lr) * batch.mask) / n,
            "d_fake": jnp.sum(jax.nn.sigmoid(lf) * batch.mask) / n,
        }
        return state.replace(d=state.d.apply_gradients(grads=grads)), metrics

    return d_step


def make_g_step(spec: GANSpec) -> Callable:
    """``g_step(state, batch) -> (state, metrics)``: one update of G against the current D.

    Noise, masks and D's dropout come from ``fold_in(state.g.key, state.g.step)``. G's loss is
    :func:`g_adversarial_loss` plus, for CFGAN with ZR, ``zr_alpha * mean_u sum_{j in ZR_u}
    r̂_uj^2``. Metrics: ``g_loss`` (the minimised objective), ``g_adv``, ``g_zr``,
    ``d_fake_for_g`` (mean D(G(z)) seen by this step).
    """
    disc = spec.discriminator

    def g_step(state: GANState, batch: GANBatch):
        key = jax.random.fold_in(state.g.key, state.g.step)
        cond = batch.real if spec.conditional else None
        n = jnp.maximum(jnp.sum(batch.mask), 1.0)

        def loss_fn(g_params):
            generated, shown, zr_mask = fake_users(spec, g_params, key, batch.real)
            lf = disc.apply(state.d.params, shown, cond, train=True,
                            rngs={"dropout": jax.random.fold_in(key, _DROP_FAKE)})
            adv = g_adversarial_loss(lf, batch.mask, spec.non_saturating)
            zr = jnp.sum(jnp.sum(jnp.square(generated) * zr_mask, axis=-1) * batch.mask) / n
            total = adv + spec.zr_alpha * zr if spec.conditional and spec.zr else adv
            return total, (adv, zr, lf)

        (loss, (adv, zr, lf)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g.params)
        metrics = {
            "g_loss": loss,
            "g_adv": adv,
            "g_zr": zr,
            "d_fake_for_g": jnp.sum(jax.nn.sigmoid(lf) * batch.mask) / n,
        }
        return state.replace(g=state.g.apply_gradients(grads=grads)), metrics

    return g_step


def make_gan_step(spec: GANSpec) -> Callable:
    """``step(state, batch) -> (state, metrics)``: ``spec.d_steps`` D steps, then one G step.

    The D steps see the same real users with fresh noise, masks and dropout each (a ``lax.scan``);
    D metrics are averaged over them.
    """
    d_step, g_step = make_d_step(spec), make_g_step(spec)

    def step(state: GANState, batch: GANBatch):
        state, d_metrics = jax.lax.scan(lambda s, _: d_step(s, batch), state, None, length=spec.d_steps)
        state, g_metrics = g_step(state, batch)
        return state, {**jax.tree.map(jnp.mean, d_metrics), **g_metrics}

    return step
