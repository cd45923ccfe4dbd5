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

Options, each a switch of :class:`GANSpec` that is off by default (off, the seed's game above):

* ``relax``: D judges the discrete profile that would be injected -- each fake user's top-L items,
  L copied from the batch's real user in the same row (so fake lengths follow the real ones) --
  through a straight-through or Gumbel top-L relaxation (:mod:`jaxrec.attacks.discrete`);
* ``temperature``: the Gumbel sample is drawn from ``softmax(logits / temperature)`` (lower: closer
  to G's own top-L);
* ``rating_levels = K``: rated users; a real row holds ``rating / K`` (0 = not rated), G's second
  head writes a rating ``1..K`` on each chosen item: its mean rounded (``rating_head="mean"``) or a
  level drawn from per-level logits (``"categorical"``), both straight-through;
* ``loss``: ``bce`` (above), ``hinge`` (D: ``relu(1 - l_real) + relu(1 + l_fake)``, G: ``-l_fake``;
  Lim & Ye 2017, Miyato et al. ICLR 2018) or ``wgan-gp`` (D: ``l_fake - l_real + gp_weight (||grad
  D(x_hat)|| - 1)^2`` on random interpolates ``x_hat``, G: ``-l_fake``; Gulrajani et al., NeurIPS 2017);
* ``label_smoothing = s``: one-sided, D's real target is ``1 - s`` (Salimans et al., NeurIPS 2016);
* ``instance_noise = sigma``: ``N(0, sigma^2)`` added to every input of D (Sønderby et al., ICLR 2017);
* ``feature_matching = w``: G's loss adds ``w ||mean f(real) - mean f(fake)||^2`` over D's last
  hidden layer (Salimans et al. 2016);
* ``minibatch_std``: D sees the minibatch standard deviation feature (Karras et al., ICLR 2018);
* ``length_input``: G reads the profile length L it will be cut to (short real profiles hold
  popular items, long ones reach into the tail; without L one score vector must serve both);
* two time-scale learning rates (Heusel et al., NeurIPS 2017) are G's and D's optimisers.

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

import functools
from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxrec.adversarial.gan_losses import (  # noqa: F401  (re-exported)
    d_loss_terms,
    feature_matching_loss,
    g_adversarial_loss,
    gradient_penalty,
)
from jaxrec.adversarial.gan_spec import GANSpec  # noqa: F401  (re-exported)
from jaxrec.attacks.discrete import relaxed_top_l, selection_scores, st_categorical, st_round
from jaxrec.errors import JaxrecError
from jaxrec.models.gan import Discriminator, Generator, init_discriminator, init_generator
from jaxrec.train.state import TrainState

# fold_in tags separating the random streams inside one step
(
    _NOISE,
    _MASK_PM,
    _MASK_ZR,
    _DROP_REAL,
    _DROP_FAKE,
    _SHUFFLE,
    _GUMBEL,
    _INST_REAL,
    _INST_FAKE,
    _GP,
    _DROP_GP,
    _INST_GP,
) = range(12)


# ------------------------------------------------------------------------------------------------
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
    *,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
) -> GANState:
    """Initialise G and D from one typed key (split into init and step keys for each); one
    compiled program per (spec, optimisers)."""
    return _create_gan_state(spec, g_tx, d_tx, key)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _create_gan_state(spec: GANSpec, g_tx, d_tx, key: jax.Array) -> GANState:
    kg, kd, kgs, kds, ke = jax.random.split(key, 5)
    g_params = init_generator(spec.generator, kg, spec.noise_dim + int(spec.length_input))
    d_params = init_discriminator(spec.discriminator, kd, spec.n_items)
    # steps as int32 arrays, as after a step (one jit signature); two buffers (both are donated)
    g = TrainState.create(apply_fn=spec.generator.apply, params=g_params, tx=g_tx, key=kgs)
    g = g.replace(step=jnp.zeros((), jnp.int32))
    d = TrainState.create(apply_fn=spec.discriminator.apply, params=d_params, tx=d_tx, key=kds)
    d = d.replace(step=jnp.zeros((), jnp.int32))
    return GANState(g=g, d=d, key=ke)


@functools.lru_cache(maxsize=64)
def gan_adam(lr: float, b1: float = 0.5) -> optax.GradientTransformation:
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


class GANSample(NamedTuple):
    """G's users before they are cut to profiles (``[N, n_items]`` each).

    Attributes:
      prob: ``sigmoid`` of G's item logits (G's raw output, in [0, 1]).
      scores: the scores whose top-L is the profile (:func:`jaxrec.attacks.profiles.top_l`): ``prob``
        without a relaxation (as before it), the logits with ``straight_through``, the logits plus
        the step's Gumbel noise with ``gumbel``.
      ratings: G's ratings rounded to ``1..K`` (None for unrated GANs).
    """

    prob: jax.Array
    scores: jax.Array
    ratings: jax.Array | None

    def rate(self, profiles):
        """``profiles [N, n_items]`` (0/1, cut from these scores) with G's ratings on the chosen
        items; unchanged for an unrated G."""
        return profiles if self.ratings is None else profiles * self.ratings


def d_view(x, levels: int):
    """What D sees of users ``x [N, n_items]`` (ratings or 0/1, 0 = none): ``x / K`` for a rated GAN
    (``levels = K``), else which items each user has (0/1). numpy or jax in, float32 out."""
    return (x / levels if levels else x > 0).astype(jnp.float32)


def users_from_noise(spec: GANSpec, g_params, z: jax.Array, gumbel_key: jax.Array, lengths: jax.Array):
    """Unconditional G's users for noise ``z [B, noise_dim]``: ``(shown [B, n], sample)``.

    ``shown`` is what D judges: ``prob`` without a relaxation; with one, exactly the discrete
    profile :func:`~jaxrec.attacks.discrete.top_l_mask` cuts from ``sample.scores`` at
    ``lengths [B]`` (straight-through gradients); rated GANs multiply by ``rating / K``. The Gumbel
    relaxation draws its noise from ``gumbel_key``. With ``length_input`` G also reads each
    profile's length, ``log(1 + L) / log(1 + n_items)``, next to ``z``.
    """
    if spec.length_input:
        scaled = jnp.log1p(lengths.astype(jnp.float32)) / jnp.log1p(float(spec.n_items))
        z = jnp.concatenate([z, scaled[:, None]], axis=-1)
    logits, ratings = spec.generator.apply(g_params, z, None, method=Generator.heads)
    prob = jax.nn.sigmoid(logits)
    if spec.relax == "none":
        shown, scores = prob, prob
    else:
        noise_key = gumbel_key if spec.relax == "gumbel" else None
        shown = relaxed_top_l(logits, lengths, noise_key, spec.tau, spec.temperature)
        scores = jax.lax.stop_gradient(selection_scores(logits, noise_key, spec.temperature))
    if ratings is not None:
        if spec.rating_head == "categorical":
            ratings = st_categorical(ratings, jax.random.fold_in(gumbel_key, 1), spec.tau)
        else:
            ratings = st_round(ratings)
        shown = shown * ratings / spec.rating_levels
    return shown, GANSample(prob, scores, None if ratings is None else jax.lax.stop_gradient(ratings))


def fake_users(spec: GANSpec, g_params, key: jax.Array, real: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """G's users for a batch and what D sees of them.

    Args:
      real: ``[B, n_items]`` the batch's real users (CFGAN's condition; unconditionally the fake in
        row r gets the length of real row r).
    Returns ``(generated [B, n], shown_to_d [B, n], zr_mask [B, n])``: unconditionally
    ``generated = G's probabilities``, ``shown_to_d`` as :func:`users_from_noise`; for CFGAN
    ``generated ⊙ (e_u [+ k_u])`` and the ZR sample (zeros when ZR is off).
    """
    b = real.shape[0]
    z = sample_noise(jax.random.fold_in(key, _NOISE), b, spec.noise_dim)
    if not spec.conditional:
        gumbel_key = jax.random.fold_in(key, _GUMBEL)
        shown, sample = users_from_noise(spec, g_params, z, gumbel_key, jnp.sum(real > 0, axis=-1))
        return sample.prob, shown, jnp.zeros_like(shown)
    generated = spec.generator.apply(g_params, z, real)
    mask = real
    if spec.pm:
        mask = mask + nonpurchased_sample(jax.random.fold_in(key, _MASK_PM), real, spec.pm_ratio)
    zr_mask = (
        nonpurchased_sample(jax.random.fold_in(key, _MASK_ZR), real, spec.zr_ratio) if spec.zr else jnp.zeros_like(real)
    )
    return generated, generated * mask, zr_mask


def d_train_logits(
    spec: GANSpec, d_params, x: jax.Array, cond, key: jax.Array, tags: tuple[int, int], mask: jax.Array
) -> jax.Array:
    """D's outputs ``[B]`` on ``x [B, n]`` in training: instance noise (stream ``tags[1]``) on the
    input when ``spec.instance_noise > 0``, dropout from stream ``tags[0]``, ``mask`` for the
    minibatch statistics."""
    if spec.instance_noise:
        x = x + spec.instance_noise * jax.random.normal(jax.random.fold_in(key, tags[1]), x.shape)
    return spec.discriminator.apply(
        d_params, x, cond, train=True, mask=mask, rngs={"dropout": jax.random.fold_in(key, tags[0])}
    )


def make_d_step(spec: GANSpec) -> Callable:
    """``d_step(state, batch) -> (state, metrics)``: one update of D (:func:`d_loss_terms` of
    ``spec.loss``, plus the gradient penalty for ``wgan-gp``).

    G's samples are drawn with ``fold_in(state.d.key, state.d.step)`` and held fixed
    (``stop_gradient``); D's dropout and instance noise use separate streams for the real and
    fake passes. Metrics: ``d_loss``, ``d_real``, ``d_fake`` (mean ``sigmoid`` of D's outputs,
    from the training pass, dropout on; probabilities for ``bce``), and ``d_gp`` for ``wgan-gp``.
    """
    cond_of = lambda batch: batch.real if spec.conditional else None  # noqa: E731

    def d_step(state: GANState, batch: GANBatch):
        key = jax.random.fold_in(state.d.key, state.d.step)
        _, shown, _ = fake_users(spec, state.g.params, key, batch.real)
        shown = jax.lax.stop_gradient(shown)
        cond = cond_of(batch)

        def loss_fn(d_params):
            lr = d_train_logits(spec, d_params, batch.real, cond, key, (_DROP_REAL, _INST_REAL), batch.mask)
            lf = d_train_logits(spec, d_params, shown, cond, key, (_DROP_FAKE, _INST_FAKE), batch.mask)
            real, fake = d_loss_terms(lr, lf, batch.mask, spec.loss, spec.label_smoothing)
            gp = jnp.zeros(())
            if spec.loss == "wgan-gp":
                critic = lambda x: d_train_logits(spec, d_params, x, cond, key, (_DROP_GP, _INST_GP), batch.mask)  # noqa: E731
                gp = gradient_penalty(critic, batch.real, shown, jax.random.fold_in(key, _GP), batch.mask)
            return real + fake + spec.gp_weight * gp, (lr, lf, gp)

        (loss, (lr, lf, gp)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d.params)
        n = jnp.maximum(jnp.sum(batch.mask), 1.0)
        metrics = {
            "d_loss": loss,
            "d_real": jnp.sum(jax.nn.sigmoid(lr) * batch.mask) / n,
            "d_fake": jnp.sum(jax.nn.sigmoid(lf) * batch.mask) / n,
        }
        if spec.loss == "wgan-gp":
            metrics["d_gp"] = gp
        return state.replace(d=state.d.apply_gradients(grads=grads)), metrics

    return d_step


def make_g_step(spec: GANSpec) -> Callable:
    """``g_step(state, batch) -> (state, metrics)``: one update of G against the current D.

    Noise, masks, D's dropout and instance noise come from ``fold_in(state.g.key, state.g.step)``.
    G's loss is :func:`g_adversarial_loss` plus, for CFGAN with ZR, ``zr_alpha * mean_u sum_{j in
    ZR_u} r̂_uj^2``, plus ``feature_matching *`` :func:`feature_matching_loss` on D's last hidden
    layer (dropout and instance noise off). Metrics: ``g_loss`` (the minimised objective),
    ``g_adv``, ``g_zr``, ``d_fake_for_g`` (mean ``sigmoid`` of D on G's users in this step), and
    ``g_fm`` with feature matching.
    """
    disc = spec.discriminator

    def g_step(state: GANState, batch: GANBatch):
        key = jax.random.fold_in(state.g.key, state.g.step)
        cond = batch.real if spec.conditional else None
        n = jnp.maximum(jnp.sum(batch.mask), 1.0)

        def loss_fn(g_params):
            generated, shown, zr_mask = fake_users(spec, g_params, key, batch.real)
            lf = d_train_logits(spec, state.d.params, shown, cond, key, (_DROP_FAKE, _INST_FAKE), batch.mask)
            adv = g_adversarial_loss(lf, batch.mask, spec.non_saturating, spec.loss)
            zr = jnp.sum(jnp.sum(jnp.square(generated) * zr_mask, axis=-1) * batch.mask) / n
            total = adv + spec.zr_alpha * zr if spec.conditional and spec.zr else adv
            fm = jnp.zeros(())
            if spec.feature_matching:
                feats = lambda x: disc.apply(state.d.params, x, cond, method=Discriminator.features)  # noqa: E731
                fm = feature_matching_loss(feats(batch.real), feats(shown), batch.mask)
                total = total + spec.feature_matching * fm
            return total, (adv, zr, fm, lf)

        (loss, (adv, zr, fm, lf)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g.params)
        metrics = {
            "g_loss": loss,
            "g_adv": adv,
            "g_zr": zr,
            "d_fake_for_g": jnp.sum(jax.nn.sigmoid(lf) * batch.mask) / n,
        }
        if spec.feature_matching:
            metrics["g_fm"] = fm
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
