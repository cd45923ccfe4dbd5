"""G/D modules, the seed's losses, pure D/G steps, CFGAN masks, determinism."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrec.adversarial.gan_training import (
    GANBatch,
    GANSpec,
    create_gan_state,
    d_loss_terms,
    fake_users,
    fit_gan,
    g_adversarial_loss,
    gan_adam,
    gan_data,
    make_d_step,
    make_g_step,
    make_gan_epoch,
    nonpurchased_sample,
)
from jaxrec.errors import JaxrecError
from jaxrec.models.gan import Discriminator, Generator, init_discriminator, init_generator

N_ITEMS = 24


def _real(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, N_ITEMS)) < 0.25).astype(np.float32)


def _spec(**kw):
    base = dict(n_items=N_ITEMS, noise_dim=8, g_hidden=(16,), d_hidden=(16,), dropout=0.3)
    return GANSpec(**{**base, **kw})


def _batch(real):
    return GANBatch(jnp.asarray(real), jnp.ones(real.shape[0]))


#: the two GANs of these tests (few distinct programs keep the compile time down)
SPEC_U = _spec(dropout=0.0)  # the seed's GAN, minimax G loss
SPEC_C = _spec(  # CFGAN, non-saturating, PM and ZR on
    conditional=True,
    noise_dim=0,
    dropout=0.0,
    non_saturating=True,
    pm=True,
    pm_ratio=0.5,
    zr=True,
    zr_ratio=0.5,
    zr_alpha=10.0,
)
_d_step = functools.lru_cache(lambda spec: jax.jit(make_d_step(spec)))
_g_step = functools.lru_cache(lambda spec: jax.jit(make_g_step(spec)))


def test_shapes_and_ranges():
    g = Generator(N_ITEMS, (16,))
    gp = init_generator(g, jax.random.key(0), 8)
    out = g.apply(gp, jnp.ones((5, 8)))
    assert out.shape == (5, N_ITEMS)  # G's users are the sigmoid of its logits
    np.testing.assert_allclose(out, jax.nn.sigmoid(g.apply(gp, jnp.ones((5, 8)), method=Generator.logits)), rtol=1e-6)
    d = Discriminator((16,), 0.3)
    dp = init_discriminator(d, jax.random.key(1), N_ITEMS)
    assert d.apply(dp, out).shape == (5,)
    # dropout only with train=True, and then it needs (and uses) the rng
    a = d.apply(dp, out, train=True, rngs={"dropout": jax.random.key(2)})
    b = d.apply(dp, out, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(a, b)
    np.testing.assert_allclose(d.apply(dp, out), d.apply(dp, out))
    # conditional: G(z, c) and D(x, c); noise may be empty
    gc = Generator(N_ITEMS, (16,), conditional=True)
    gcp = init_generator(gc, jax.random.key(0), 0)
    c = jnp.asarray(_real(5))
    assert gc.apply(gcp, jnp.zeros((5, 0)), c).shape == (5, N_ITEMS)
    dc = Discriminator((16,), conditional=True)
    dcp = init_discriminator(dc, jax.random.key(0), N_ITEMS)
    assert dc.apply(dcp, c, c).shape == (5,)
    with pytest.raises(JaxrecError, match="condition"):
        gc.apply(gcp, jnp.zeros((5, 0)))


def test_seed_loss_matches_definition():
    lr, lf = jnp.array([0.3, -1.2, 2.0]), jnp.array([-0.5, 0.1, 1.5])
    w = jnp.ones(3)
    real, fake = d_loss_terms(lr, lf, w)
    d_real, d_fake = jax.nn.sigmoid(lr), jax.nn.sigmoid(lf)
    np.testing.assert_allclose(real + fake, -jnp.mean(jnp.log(d_real)) - jnp.mean(jnp.log(1 - d_fake)), rtol=1e-5)
    np.testing.assert_allclose(g_adversarial_loss(lf, w, False), jnp.mean(jnp.log(1 - d_fake)), rtol=1e-5)
    np.testing.assert_allclose(g_adversarial_loss(lf, w, True), -jnp.mean(jnp.log(d_fake)), rtol=1e-5)
    # padding rows (weight 0) do not count
    real2, _ = d_loss_terms(jnp.array([0.3, 50.0]), jnp.zeros(2), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(real2, jax.nn.softplus(-0.3), rtol=1e-6)


def _d_eval_loss(spec, state, real, key):
    _, shown, _ = fake_users(spec, state.g.params, key, real)
    cond = real if spec.conditional else None
    lr = spec.discriminator.apply(state.d.params, real, cond)
    lf = spec.discriminator.apply(state.d.params, shown, cond)
    a, b = d_loss_terms(lr, lf, jnp.ones(real.shape[0]))
    return float(a + b)


@pytest.mark.parametrize("spec", [SPEC_U, SPEC_C], ids=["gan", "cfgan"])
def test_d_step_lowers_d_loss(spec):
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-2))
    real = jnp.asarray(_real())
    key = jax.random.fold_in(state.d.key, state.d.step)  # the noise the step will draw
    before = _d_eval_loss(spec, state, real, key)
    new, metrics = _d_step(spec)(state, _batch(real))
    after = _d_eval_loss(spec, new, real, key)
    assert after < before
    assert int(new.d.step) == 1 and int(new.g.step) == 0
    np.testing.assert_allclose(metrics["d_loss"], before, rtol=1e-5)
    # G untouched
    jax.tree.map(np.testing.assert_array_equal, new.g.params, state.g.params)


@pytest.mark.parametrize("spec", [SPEC_U, SPEC_C], ids=["gan-minimax", "cfgan-non-saturating"])
def test_g_step_raises_d_fake(spec):
    state = create_gan_state(spec, jax.random.key(1), g_tx=gan_adam(1e-2), d_tx=gan_adam(1e-3))
    real = jnp.asarray(_real())
    key = jax.random.fold_in(state.g.key, state.g.step)
    cond = real if spec.conditional else None

    def d_fake(s):
        _, shown, _ = fake_users(spec, s.g.params, key, real)
        return float(jnp.mean(jax.nn.sigmoid(spec.discriminator.apply(s.d.params, shown, cond))))

    new, _ = _g_step(spec)(state, _batch(real))
    assert d_fake(new) > d_fake(state)
    jax.tree.map(np.testing.assert_array_equal, new.d.params, state.d.params)


def test_condition_masks():
    real = jnp.asarray(_real(64))
    k = nonpurchased_sample(jax.random.key(0), real, 0.5)
    assert float(jnp.sum(k * real)) == 0.0  # never a purchased item
    share = float(jnp.sum(k) / jnp.sum(1 - real))
    assert 0.4 < share < 0.6
    assert float(jnp.sum(nonpurchased_sample(jax.random.key(0), real, 0.0))) == 0.0

    key = jax.random.key(3)
    spec = dataclasses.replace(SPEC_C, pm=False, zr=False)
    state = create_gan_state(SPEC_C, jax.random.key(0), g_tx=gan_adam(1e-2), d_tx=gan_adam(1e-3))
    gen, shown, zr = fake_users(spec, state.g.params, key, real)
    np.testing.assert_allclose(shown, gen * real)  # basic CFGAN: D sees purchased positions only
    assert float(jnp.sum(zr)) == 0.0

    gen, shown, zr = fake_users(SPEC_C, state.g.params, key, real)  # PM and ZR, ratios 0.5
    mask = shown / gen
    visible_extra = (mask > 0) & (real == 0)
    assert bool(jnp.all(mask[real > 0] == 1))  # e_u always shown
    assert 0.4 < float(jnp.sum(visible_extra) / jnp.sum(1 - real)) < 0.6  # k_u ~ pm_ratio
    assert float(jnp.sum(zr * real)) == 0.0 and float(jnp.sum(zr)) > 0
    assert not np.array_equal(np.asarray(zr), np.asarray(visible_extra, np.float32))  # separate samples

    # ZR (alpha 10) lowers G's output on non-purchased items
    step = _g_step(SPEC_C)
    st = state
    for _ in range(5):
        st, m = step(st, _batch(real))
    out1 = fake_users(SPEC_C, st.g.params, key, real)[0]
    assert float(jnp.mean(out1[real == 0])) < float(jnp.mean(gen[real == 0]))


def test_same_seed_same_run_and_epoch_shapes():
    spec = _spec(d_steps=2)
    data = gan_data(_real(30))
    epoch_fn = jax.jit(make_gan_epoch(spec, 8))

    def go(seed):
        state = create_gan_state(spec, jax.random.key(seed), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-3))
        return fit_gan(spec, state, data, epochs=2, batch_size=8)  # the shared engine and fit loop

    a, b, c = go(0), go(0), go(1)
    jax.tree.map(np.testing.assert_array_equal, a.state.g.params, b.state.g.params)
    jax.tree.map(np.testing.assert_array_equal, a.state.d.params, b.state.d.params)
    assert a.history[-1]["d_loss"] == b.history[-1]["d_loss"]
    assert not np.allclose(a.state.g.params["params"]["out"]["kernel"], c.state.g.params["params"]["out"]["kernel"])
    # 30 users / batch 8 -> 4 GAN steps per epoch (the last padded), 2 D steps each
    assert int(a.state.g.step) == 8 and int(a.state.d.step) == 16
    _, metrics = epoch_fn(go(0).state, data)
    assert metrics["d_loss"].shape == (4,)
    assert set(metrics) >= {"d_loss", "d_real", "d_fake", "g_loss", "g_zr", "d_fake_for_g"}


def test_bad_values_raise():
    with pytest.raises(JaxrecError, match="noise_dim"):
        _spec(noise_dim=0)
    with pytest.raises(JaxrecError, match="d_steps"):
        _spec(d_steps=0)
    with pytest.raises(JaxrecError, match="pm_ratio"):
        _spec(pm_ratio=1.5)
    with pytest.raises(JaxrecError, match="0/1"):
        gan_data(np.full((3, 4), 0.5))
    with pytest.raises(JaxrecError, match="learning rate"):
        gan_adam(0.0)
    # GAN Adam is optax's Adam with beta1 0.5, one object per setting (jit reuses its compilation)
    assert gan_adam(1e-3) is gan_adam(1e-3) and gan_adam(1e-3) is not gan_adam(1e-3, 0.9)
    params, grads = {"w": jnp.arange(3.0)}, {"w": jnp.array([0.5, -1.0, 2.0])}
    ours, _ = gan_adam(1e-3).update(grads, gan_adam(1e-3).init(params))
    theirs, _ = optax.adam(1e-3, b1=0.5).update(grads, optax.adam(1e-3, b1=0.5).init(params))
    np.testing.assert_array_equal(ours["w"], theirs["w"])
