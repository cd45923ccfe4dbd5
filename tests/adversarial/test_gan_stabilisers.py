"""The GAN's discrete relaxation, stabiliser switches, rated profiles and model selection."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial import realism
from jaxrec.adversarial.fake_users import gan_fakes
from jaxrec.adversarial.gan_losses import d_loss_terms, feature_matching_loss, g_adversarial_loss, gradient_penalty
from jaxrec.adversarial.gan_steps import _DROP_REAL, _INST_REAL, d_train_logits
from jaxrec.adversarial.gan_training import (
    _GUMBEL,
    GANBatch,
    GANSpec,
    create_gan_state,
    fit_gan,
    gan_adam,
    gan_data,
    make_d_step,
    make_g_step,
    realism_valid,
    realism_validate,
    sample,
    sample_noise,
    users_from_noise,
)
from jaxrec.attacks import discrete, profiles, shilling
from jaxrec.attacks.fresh_detector import fresh_detector
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.models.gan import Discriminator, minibatch_std

N_ITEMS = 30


def _spec(**kw):
    base = dict(n_items=N_ITEMS, noise_dim=6, g_hidden=(16,), d_hidden=(16,), dropout=0.0)
    return GANSpec(**{**base, **kw})


def _real(n=24, seed=0, levels=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, N_ITEMS)) < 0.3).astype(np.float32)
    x[:, 0] = 1.0  # nobody is empty
    if levels:
        x = x * rng.integers(1, levels + 1, x.shape) / levels
    return x.astype(np.float32)


def _reference_top_l(scores, lengths, targets=()):
    """numpy: the L highest non-target scores per row (stable: lower index first on ties) + targets."""
    s = np.asarray(scores, np.float64).copy()
    s[:, list(targets)] = -np.inf
    out = np.zeros(s.shape, np.float32)
    for r, (row, n) in enumerate(zip(s, lengths)):
        out[r, np.argsort(-row, kind="stable")[:n]] = 1.0
    out[:, list(targets)] = 1.0
    return out


# ------------------------------------------------------------------------------------------------
def test_top_l_mask_is_exact_with_ties_and_targets():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (40, N_ITEMS)).astype(np.float32)  # many ties
    scores[3] = 0.0  # a row of equal scores
    scores[5, :4] = [-np.inf, np.inf, -0.0, 0.0]
    lengths = rng.integers(0, N_ITEMS - 2, 40)
    for targets in ((), (2, 7)):
        got = np.asarray(discrete.top_l_mask(jnp.asarray(scores), jnp.asarray(lengths), targets))
        np.testing.assert_array_equal(got, _reference_top_l(scores, lengths, targets))
    np.testing.assert_array_equal(
        np.asarray(discrete.top_l_mask(jnp.asarray(scores), jnp.asarray(lengths))).sum(1), lengths
    )


def test_straight_through_and_round_forward_exact_gradient_soft():
    soft = jnp.array([0.1, 0.7, 0.3333, 0.9999])
    hard = jnp.array([1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(discrete.straight_through(hard, soft), hard)  # bit-exact
    w = jnp.array([1.0, 2.0, 3.0, 4.0])
    g = jax.grad(lambda s: jnp.sum(w * discrete.straight_through(hard, s)))(soft)
    np.testing.assert_array_equal(g, w)
    r = jnp.array([1.2, 2.5001, 4.49, 3.0])
    np.testing.assert_array_equal(discrete.st_round(r), [1.0, 3.0, 4.0, 3.0])
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.sum(w * discrete.st_round(x)))(r), w)
    # categorical: forward the Gumbel-max level, backward the softmax's expected level
    logits = jnp.log(jnp.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))
    key = jax.random.key(0)
    scores = logits + discrete.gumbel(key, logits.shape)
    level = discrete.st_categorical(logits, key)
    np.testing.assert_array_equal(level, jnp.argmax(scores, -1) + 1.0)
    expected = lambda lg: jnp.sum(jax.nn.softmax(lg + discrete.gumbel(key, lg.shape), -1) @ jnp.arange(1.0, 4.0))  # noqa: E731
    np.testing.assert_allclose(
        jax.grad(lambda lg: jnp.sum(discrete.st_categorical(lg, key)))(logits), jax.grad(expected)(logits), rtol=1e-5
    )
    draws = jax.vmap(lambda k: discrete.st_categorical(logits[0], k))(jax.random.split(key, 4000))
    np.testing.assert_allclose(np.bincount(np.asarray(draws, int) - 1, minlength=3) / 4000, [0.1, 0.2, 0.7], atol=0.03)


@pytest.mark.parametrize(
    "relax, levels, head, length_input",
    [
        ("straight_through", 0, "mean", False),
        ("gumbel", 0, "mean", True),
        ("gumbel", 5, "mean", False),
        ("straight_through", 5, "categorical", True),
    ],
)
def test_relaxation_forward_is_the_injected_profile_and_gradients_reach_g(relax, levels, head, length_input):
    spec = _spec(relax=relax, rating_levels=levels, rating_head=head, length_input=length_input)
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-3))
    key, n = jax.random.key(7), 12
    lengths = jnp.asarray(np.random.default_rng(1).integers(1, 20, n))
    z = sample_noise(key, n, spec.noise_dim)
    shown, out = users_from_noise(spec, state.g.params, z, jax.random.fold_in(key, _GUMBEL), lengths)
    # what `jaxrec gan` / `jaxrec attack` inject for the same key and lengths
    drawn = sample(spec, state.g.params, key, lengths)
    injected = np.asarray(profiles.top_l(drawn.scores, lengths))
    np.testing.assert_array_equal(injected.sum(1), np.asarray(lengths))
    if levels:
        ratings = np.asarray(drawn.ratings)
        assert set(np.unique(ratings)) <= set(range(1, levels + 1))
        injected = injected * ratings / levels
    np.testing.assert_array_equal(np.asarray(shown), injected)  # D judged exactly what is injected
    np.testing.assert_array_equal(np.asarray(out.scores), np.asarray(drawn.scores))

    w = jax.random.normal(jax.random.key(3), (N_ITEMS,))

    def objective(gp):
        x, _ = users_from_noise(spec, gp, z, jax.random.fold_in(key, _GUMBEL), lengths)
        return jnp.sum(x @ w)

    grads = jax.grad(objective)(state.g.params)["params"]
    assert float(jnp.abs(grads["out"]["kernel"]).sum()) > 0
    if levels:
        assert float(jnp.abs(grads["ratings"]["kernel"]).sum()) > 0
    if length_input:  # G reads the lengths it writes for
        moved = sample(spec, state.g.params, key, lengths + 3).scores
        assert not np.allclose(np.asarray(moved), np.asarray(drawn.scores))
    # another key: other noise (and other Gumbel draws)
    other = sample(spec, state.g.params, jax.random.key(8), lengths).scores
    assert not np.array_equal(np.asarray(other), np.asarray(drawn.scores))


def test_default_spec_shows_g_raw_output():
    """All switches off: D sees G's sigmoid output as in the seed (no relaxation, no ratings)."""
    spec = _spec()
    assert (
        spec.relax,
        spec.loss,
        spec.rating_levels,
        spec.label_smoothing,
        spec.instance_noise,
        spec.feature_matching,
        spec.minibatch_std,
    ) == ("none", "bce", 0, 0.0, 0.0, 0.0, False)
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-3))
    z = sample_noise(jax.random.key(1), 5, spec.noise_dim)
    shown, _ = users_from_noise(spec, state.g.params, z, jax.random.key(2), jnp.full((5,), 3))
    np.testing.assert_array_equal(shown, spec.generator.apply(state.g.params, z))


# ------------------------------------------------------------------------------------------------
LR, LF, MASK = jnp.array([0.3, -1.2, 2.0, 9.0]), jnp.array([-0.5, 0.1, 1.5, 9.0]), jnp.array([1.0, 1.0, 1.0, 0.0])


def test_label_smoothing_is_one_sided_bce():
    s = 0.1
    real, fake = d_loss_terms(LR, LF, MASK, "bce", s)
    p_real = jax.nn.sigmoid(LR[:3])
    want = -jnp.mean((1 - s) * jnp.log(p_real) + s * jnp.log(1 - p_real))
    np.testing.assert_allclose(real, want, rtol=1e-5)
    np.testing.assert_allclose(fake, -jnp.mean(jnp.log(1 - jax.nn.sigmoid(LF[:3]))), rtol=1e-5)  # fakes untouched
    np.testing.assert_allclose(d_loss_terms(LR, LF, MASK, "bce", 0.0)[0], -jnp.mean(jnp.log(p_real)), rtol=1e-5)


def test_hinge_and_wasserstein_losses():
    real, fake = d_loss_terms(LR, LF, MASK, "hinge")
    np.testing.assert_allclose(real, (0.7 + 2.2 + 0.0) / 3, rtol=1e-6)
    np.testing.assert_allclose(fake, (0.5 + 1.1 + 2.5) / 3, rtol=1e-6)
    real, fake = d_loss_terms(LR, LF, MASK, "wgan-gp")
    np.testing.assert_allclose(real, -(0.3 - 1.2 + 2.0) / 3, rtol=1e-6)
    np.testing.assert_allclose(fake, (-0.5 + 0.1 + 1.5) / 3, rtol=1e-6)
    for loss in ("hinge", "wgan-gp"):
        np.testing.assert_allclose(g_adversarial_loss(LF, MASK, True, loss), -(-0.5 + 0.1 + 1.5) / 3, rtol=1e-6)


def test_gradient_penalty_of_a_linear_critic():
    """critic(x) = x . w has gradient w everywhere: penalty (||w|| - 1)^2 whatever the interpolates."""
    w = jnp.array([3.0, 4.0, 0.0])  # norm 5
    real = jnp.ones((4, 3))
    fake = jnp.zeros((4, 3))
    gp = gradient_penalty(lambda x: x @ w, real, fake, jax.random.key(0), jnp.ones(4))
    np.testing.assert_allclose(gp, 16.0, rtol=1e-5)
    # a critic with a unit gradient has no penalty; masked rows do not count
    u = w / 5.0
    np.testing.assert_allclose(
        gradient_penalty(lambda x: x @ u, real, fake, jax.random.key(0), jnp.ones(4)), 0.0, atol=1e-5
    )
    quad = lambda x: jnp.sum(x * x, axis=-1)  # noqa: E731  gradient 2 x_hat: norm depends on the row
    a = gradient_penalty(quad, real, fake, jax.random.key(1), jnp.array([1.0, 0.0, 0.0, 0.0]))
    e = jax.random.uniform(jax.random.key(1), (4, 1))
    np.testing.assert_allclose(a, (2 * float(e[0, 0]) * np.sqrt(3) - 1) ** 2, rtol=1e-5)


def test_feature_matching_and_minibatch_std_by_hand():
    fr = jnp.array([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    ff = jnp.array([[0.0, 0.0], [2.0, 2.0], [-50.0, 7.0]])
    mask = jnp.array([1.0, 1.0, 0.0])
    # means over the two real rows: (2, 3) vs (1, 1) -> 1 + 4
    np.testing.assert_allclose(feature_matching_loss(fr, ff, mask), 5.0, rtol=1e-6)
    h = jnp.array([[0.0, 1.0], [2.0, 5.0], [1e6, 1e6]])
    # stds over the first two rows: 1 and 2 -> mean 1.5
    np.testing.assert_allclose(minibatch_std(h, mask), 1.5, rtol=1e-5)
    d = Discriminator((4,), 0.0, minibatch_std=True)
    params = d.init(jax.random.key(0), jnp.zeros((1, 5)))
    assert params["params"]["out"]["kernel"].shape == (5, 1)  # 4 features + the batch std
    x = jax.random.uniform(jax.random.key(1), (3, 5))
    same = d.apply(params, x[:1]).item()
    assert d.apply(params, x)[0].item() != pytest.approx(same)  # a row's score depends on its batch


def test_instance_noise_is_gaussian_on_d_inputs():
    spec0, spec = _spec(), _spec(instance_noise=0.5)
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-3))
    x = jnp.asarray(_real(6))
    key = jax.random.key(4)
    tags = (_DROP_REAL, _INST_REAL)
    plain = spec.discriminator.apply(state.d.params, x)
    np.testing.assert_array_equal(d_train_logits(spec0, state.d.params, x, None, key, tags, jnp.ones(6)), plain)
    noisy = x + 0.5 * jax.random.normal(jax.random.fold_in(key, _INST_REAL), x.shape)
    np.testing.assert_allclose(
        d_train_logits(spec, state.d.params, x, None, key, tags, jnp.ones(6)),
        spec.discriminator.apply(state.d.params, noisy),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(loss="hinge"),
        dict(loss="wgan-gp", gp_weight=5.0),
        dict(label_smoothing=0.2),
        dict(feature_matching=1.0, minibatch_std=True, instance_noise=0.1),
        dict(relax="gumbel", rating_levels=5),
    ],
)
def test_every_switch_trains(kw):
    """Each option's D and G steps run, report their terms, and move the parameters."""
    spec = _spec(**kw)
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-2), d_tx=gan_adam(1e-2))
    batch = GANBatch(jnp.asarray(_real(levels=spec.rating_levels)), jnp.ones(24))
    new, dm = jax.jit(make_d_step(spec))(state, batch)
    new, gm = jax.jit(make_g_step(spec))(new, batch)
    assert all(np.isfinite(float(v)) for v in {**dm, **gm}.values())
    assert ("d_gp" in dm) == (spec.loss == "wgan-gp") and ("g_fm" in gm) == (spec.feature_matching > 0)
    for a, b in ((new.d.params, state.d.params), (new.g.params, state.g.params)):
        assert not np.allclose(a["params"]["out"]["kernel"], b["params"]["out"]["kernel"])


def test_bad_switches_raise():
    for kw, match in (
        (dict(loss="ls"), "loss"),
        (dict(relax="soft"), "relax"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(loss="hinge", label_smoothing=0.1), "'bce' only"),
        (dict(rating_levels=1), "rating_levels"),
        (dict(conditional=True, relax="gumbel"), "unconditional"),
        (dict(tau=0.0), "tau"),
    ):
        with pytest.raises(JaxrecError, match=match):
            _spec(**kw)
    with pytest.raises(JaxrecError, match="rating / 5"):
        gan_data(np.full((2, 3), 0.3), levels=5)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["empirical", "mean"])
def test_rated_gan_profiles_valid_ratings_lengths_and_targets(mode):
    spec = _spec(relax="gumbel", rating_levels=5)
    state = create_gan_state(spec, jax.random.key(2), g_tx=gan_adam(1e-3), d_tx=gan_adam(1e-3))
    real_lengths = np.array([4, 4, 9, 15, 6])
    targets = (3, 11)
    binary, drawn = profiles.gan_profiles(
        functools.partial(sample, spec, state.g.params), jax.random.key(5), 40, real_lengths, targets, mode
    )
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((20, N_ITEMS)) < 0.4)
    stats = shilling.rating_stats(Interactions(users, items, 20, N_ITEMS, ratings=rng.integers(1, 6, users.size)))
    rated = gan_fakes(np.asarray(binary), np.asarray(drawn.ratings), stats, targets, seed=0)
    assert set(np.unique(rated)) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    np.testing.assert_array_equal(rated[:, list(targets)], 5.0)  # push: the maximum rating
    filler = (rated > 0).sum(1) - len(targets)
    if mode == "mean":
        np.testing.assert_array_equal(filler, 8)  # round(mean(4, 4, 9, 15, 6)) = 7.6 -> 8
    else:
        assert set(filler.tolist()) <= set(real_lengths.tolist()) and len(set(filler.tolist())) > 1
    chosen = (np.asarray(binary) > 0) & (rated > 0)
    chosen[:, list(targets)] = False
    np.testing.assert_array_equal(rated[chosen], np.asarray(drawn.ratings)[chosen])  # G's own ratings


# ------------------------------------------------------------------------------------------------
def test_realism_gap_and_jaccard_by_hand():
    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], np.float32)
    # pairs: (0,1) 1/3, (0,2) 1, (1,2) 1/3 -> mean 5/9
    np.testing.assert_allclose(realism.pairwise_jaccard(x), 5 / 9, rtol=1e-6)
    fig = realism.realism_gap(x, x, nn_cosine_real=0.5, diversity_real=0.25)
    np.testing.assert_allclose(fig["popularity_jsd"], 0.0, atol=1e-7)
    np.testing.assert_allclose(fig["nn_cosine"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(fig["gap"], 0.5 + (5 / 9 - 0.25), rtol=1e-5)
    np.testing.assert_array_equal(realism.rating_counts(np.array([[5, 0, 3], [3, 3, 0]]), 5), [0, 0, 3, 0, 1])
    rated = realism.realism_gap(x, x, 0.5, 0.25, jnp.array([1.0, 0, 0, 0, 0]), jnp.array([0.0, 0, 0, 0, 2]))
    np.testing.assert_allclose(rated["rating_jsd"], 1.0, rtol=1e-6)  # disjoint rating histograms
    np.testing.assert_allclose(rated["gap"], fig["gap"] + 1.0, rtol=1e-5)
    hist = realism.realism_report(np.array([[5, 0, 3]]), np.array([[1, 5, 0]]), levels=5)
    assert hist["rating_jsd"] == pytest.approx(float(realism.jensen_shannon([0, 0, 1, 0, 1], [1, 0, 0, 0, 1])))


@pytest.mark.parametrize("select", ["realism", "detector"])
def test_model_selection_keeps_the_best_epoch(select):
    spec = _spec(relax="straight_through")
    real = _real(32)
    data = gan_data(real)
    key = jax.random.key(9)
    valid = realism_valid(_real(16, seed=1), np.full(8, 9), key, folds=2 if select == "detector" else 0)
    state = create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(3e-3), d_tx=gan_adam(3e-3))
    fit = fit_gan(spec, state, data, epochs=4, batch_size=16, valid=valid, select=select)
    scores = [h[f"valid/{select}"] for h in fit.history]
    assert fit.selected_epoch == 1 + int(np.argmax(scores))
    again = realism_validate(spec)({"g": fit.selected.g.params}, data, valid)
    np.testing.assert_allclose(float(again[select]), max(scores), rtol=1e-6)
    if fit.selected_epoch != 4:  # the kept G is not the last one
        assert not np.allclose(
            fit.selected.g.params["params"]["out"]["kernel"], fit.state.g.params["params"]["out"]["kernel"]
        )
    if select == "detector":  # the on-device figure is the fresh detector's out-of-fold AUC
        fakes = profiles.top_l(sample(spec, fit.selected.g.params, key, valid["lengths"]).scores, valid["lengths"])
        want = fresh_detector(np.asarray(valid["view"]), np.asarray(fakes), folds=2, seed=0)["auc"]
        np.testing.assert_allclose(float(again["fresh_auc"]), want, rtol=1e-5)
