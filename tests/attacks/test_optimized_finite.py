"""Optimized poisoning never goes silently non-finite: a fake pair's negative is never its own
positive, the differentiated Adam has a finite derivative where a row's gradients were all 0 (an
empty fake slot), and a non-finite hypergradient or outer loss is an error naming the outer step."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks import inner, outer
from jaxrec.attacks import optimized as opt
from jaxrec.data.interactions import Interactions
from jaxrec.data.synthetic import low_rank
from jaxrec.errors import JaxrecError
from jaxrec.models import MF
from jaxrec.train.steps import epoch_batches


def _tiny(n_real=12, n_items=10, slots=2, seed=0):
    inter = low_rank(n_real, n_items, rank=3, threshold=0.5, seed=seed)
    return Interactions(inter.users, inter.items, n_real + slots, n_items, source="tiny")


def _setup(n_items=10, slots=2, batch=64, epochs=2, unroll=2, warm=True, dtype=jnp.float32):
    train = _tiny(n_items=n_items, slots=slots)
    model = MF(train.n_users, n_items, dim=4, initializer="normal", init_std=0.1, dtype=dtype)
    prob, n_pairs = opt.problem(train, 12, slots, batch)
    spec = opt.Spec(
        model, "bpr", 1e-3, batch, 0.05, epochs, unroll, warm, 3, "logsigmoid", 1.0, slots, n_items, n_pairs
    )
    return train, prob, spec


def _attack(spec, prob, profile, lengths, key=0):
    targets = jnp.asarray([1])
    att = opt.init_attack(
        spec, outer.outer_optimizer(), prob, profile, targets, jnp.asarray(lengths), jax.random.key(key)
    )
    return att.replace(profile=profile)


def test_a_fake_pairs_negative_is_never_its_own_positive(monkeypatch):
    """200 epochs' draws of the surrogate's epoch on 6 items (a uniform draw over all items would
    hit the pair's own positive 1 time in 6): no fake pair's negative equals its positive, the
    fake negatives are uniform over the other 5 items, and every draw that did not hit the
    positive -- every real pair's among them -- is the engine's own."""
    train, prob, spec = _setup(n_items=6, slots=3, batch=32)
    seen = lambda state, batch, data: (state, {"users": batch.users, "items": batch.items, "mask": batch.mask})  # noqa: E731
    monkeypatch.setattr(inner, "make_train_step", lambda *a, **k: seen)  # the epoch's steps record their batches
    epoch = inner._epoch(spec)
    state = opt.fresh_surrogate(spec, prob.data, jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 200)
    got = jax.jit(jax.vmap(lambda k: epoch(state.replace(key=k), prob.data)[1]))(keys)
    engine = jax.jit(jax.vmap(lambda k: epoch_batches(state.replace(key=k), prob.data, spec.batch)))(keys)
    users, items = np.asarray(got["users"]).ravel(), np.asarray(got["items"]).reshape(-1, 2)
    np.testing.assert_array_equal(users, np.asarray(engine.users).ravel())
    np.testing.assert_array_equal(items[:, 0], np.asarray(engine.items).reshape(-1, 2)[:, 0])
    # the shuffle keeps the padding behind the data's pairs (real and fake)
    row_real = np.tile(np.arange(prob.data.n_pairs) < int(prob.data.n_real), 200)
    fake = (users >= 12) & row_real
    assert fake.sum() == 200 * 3 * 6
    pos, neg = items[fake, 0], items[fake, 1]
    assert not np.any(neg == pos)
    offsets = np.bincount((neg - pos) % 6, minlength=6)
    assert offsets[0] == 0
    expected = fake.sum() / 5
    assert np.all(np.abs(offsets[1:] - expected) < 5 * np.sqrt(expected))  # uniform over the other 5
    engine_neg = np.asarray(engine.items).reshape(-1, 2)[:, 1]
    assert np.mean(engine_neg[fake] == pos) > 0.1  # the engine's draws hit it (1 in 6)
    kept = engine_neg != items[:, 0]
    np.testing.assert_array_equal(items[kept, 1], engine_neg[kept])
    real = (users < 12) & row_real
    assert np.all(engine_neg[real] != items[real, 0])  # a real pair's draw is never redrawn
    positives = set(zip(train.users.tolist(), train.items.tolist()))
    assert not any((u, i) in positives for u, i in zip(users[real], items[real, 1]))


def _central_differences(f, w, entries, h):
    out = np.zeros(len(entries))
    for n, idx in enumerate(entries):
        e = np.zeros(w.shape)
        e[idx] = h
        out[n] = (float(f(w + e)) - float(f(w - e))) / (2 * h)
    return out


def test_the_hypergradient_is_finite_and_exact_with_a_zero_gradient_fake_row():
    """Float64, 2 epochs of BPR + Adam from a fresh surrogate, fake slot 0 at a fractional profile
    and slot 1 empty: slot 1's user row has a zero gradient at every step (Adam's second moment
    stays 0; with ``eps_root = 0`` the hypergradient is NaN). Every entry is finite and equals
    central differences: slot 0's at h = 1e-5, slot 1's (the smoothing of a zero gradient sits at
    ``sqrt(eps_root)``) at h = 1e-8."""
    with jax.enable_x64(True):
        _, prob, spec = _setup(dtype=jnp.float64)
        w = np.zeros((2, 10))
        w[0] = np.random.default_rng(1).uniform(0.2, 0.8, 10)
        w = jnp.asarray(w)
        to64 = lambda x: x.astype(jnp.float64) if getattr(x, "dtype", None) == jnp.float32 else x  # noqa: E731
        start = jax.tree.map(to64, opt.fresh_surrogate(spec, prob.data, jax.random.key(0)))
        att = _attack(spec, prob, w, [3, 0]).replace(surrogate=start)
        hyper = jax.jit(lambda a: opt.hypergradient(spec, prob, a)[:3])
        loss, _, grad = hyper(att)
        grad = np.asarray(grad)
        assert np.isfinite(float(loss)) and np.all(np.isfinite(grad))
        f = lambda x: hyper(att.replace(profile=jnp.asarray(x)))[0]  # noqa: E731
        filled = [(0, j) for j in range(10)]
        fd = _central_differences(f, np.asarray(w), filled, 1e-5)
        assert np.abs(fd).max() > 1e-4
        np.testing.assert_allclose(grad[0], fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())
        empty = [(1, j) for j in range(10)]
        fd = _central_differences(f, np.asarray(w), empty, 1e-8)
        assert np.abs(fd).max() > 1e-4
        np.testing.assert_allclose(grad[1], fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())


def test_a_member_with_an_empty_slot_moves():
    """Float32 as the attack study runs it: a bi-level attack (all epochs differentiated from a
    fresh surrogate) whose second slot is empty gets finite hypergradients and changes items
    (with ``eps_root = 0`` every entry was NaN, zeroed by the row normalisation: no change)."""
    _, prob, spec = _setup(warm=False, unroll=0)
    tx = outer.outer_optimizer()
    profile = np.zeros((1, 2, 10), np.float32)
    profile[0, 0, [2, 3, 4]] = 1.0
    atts = opt.members_init(
        spec, tx, prob, jnp.asarray(profile), jnp.asarray([[1]]), jnp.asarray([[3, 0]]), 0, jax.random.key(0)[None]
    )
    _, history = opt.optimize(spec, tx, prob, atts, 3)  # a non-finite hypergradient would raise
    assert sum(r["changed"][0] for r in history) > 0


def test_eps_root_must_be_positive():
    _, _, spec = _setup()
    with pytest.raises(JaxrecError, match="eps_root must be > 0"):
        dataclasses.replace(spec, eps_root=0.0)


def _members(spec, prob, tx, m=2):
    profile = np.zeros((m, 2, 10), np.float32)
    profile[:, :, [2, 3, 4]] = 1.0
    keys = jax.vmap(jax.random.key)(jnp.arange(m))
    return opt.members_init(
        spec, tx, prob, jnp.asarray(profile), jnp.ones((m, 1), jnp.int32), jnp.full((m, 2), 3), 0, keys
    )


def test_a_non_finite_hypergradient_is_an_error_naming_the_step(monkeypatch):
    """One NaN entry in member 1's hypergradient at the second outer step (the row normalisation
    used to turn it into a zero update): the optimization stops there with an error naming the
    step and the member, never a silent no-op."""
    _, prob, spec = _setup(epochs=1, unroll=1, warm=False)
    spec = dataclasses.replace(spec, kappa=0.75)  # its own compiled program (the patch is traced in)
    real = opt.hypergradient

    def poisoned(spec, prob, att):
        loss, aux, grad, state = real(spec, prob, att)
        hit = (att.step == 1) & jnp.all(jax.random.key_data(att.key) == jax.random.key_data(jax.random.key(1)))
        return loss, aux, jnp.where(hit, grad.at[0, 5].set(jnp.nan), grad), state

    monkeypatch.setattr(opt, "hypergradient", poisoned)
    tx = outer.outer_optimizer()
    steps = []
    want = r"outer step 2 of 4 of the optimized attack: .*second: outer loss [-0-9.e]+, 1 of 20 hypergradient"
    with pytest.raises(JaxrecError, match=want):
        opt.optimize(spec, tx, prob, _members(spec, prob, tx), 4, lambda s, r: steps.append(s), ["first", "second"])
    assert steps == [1]  # step 1 went through; step 2 was refused before it was recorded


def test_a_non_finite_outer_loss_is_an_error_naming_the_step(monkeypatch):
    _, prob, spec = _setup(epochs=1, unroll=1, warm=False)
    spec = dataclasses.replace(spec, kappa=0.5)
    real = opt.scores_loss
    monkeypatch.setattr(opt, "scores_loss", lambda *a: (lambda out: (out[0] * jnp.inf, out[1]))(real(*a)))
    tx = outer.outer_optimizer()
    want = r"outer step 1 of 3 of the optimized attack: .*member 0: outer loss (-?inf|nan)"
    with pytest.raises(JaxrecError, match=want):
        opt.optimize(spec, tx, prob, _members(spec, prob, tx), 3)


def test_row_normalisation_keeps_a_non_finite_row_non_finite():
    g = jnp.asarray([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, jnp.nan, 0.0], [1.0, jnp.inf, 0.0]])
    out, _ = outer.normalize_rows().update(g, None)
    out = np.asarray(out)
    np.testing.assert_allclose(out[0], [0.6, 0.8, 0.0])
    np.testing.assert_array_equal(out[1], 0.0)
    assert not np.all(np.isfinite(out[2])) and not np.all(np.isfinite(out[3]))
