"""The transition attack's surrogate against hand counts and finite differences, its rounding and
packing, and that its ascent raises the surrogate's target hit over a heuristic's fakes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks import transitions as tr
from jaxrec.attacks.sequences import fake_sequences
from jaxrec.errors import JaxrecError
from jaxrec.models import markov

N_ITEMS = 12
TARGETS = np.array([4, 9])


def _events(seed=0, users=25):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, users)
    indptr = np.r_[0, np.cumsum(lengths)]
    # items 0..3 common, the targets rare
    p = np.r_[np.full(4, 0.15), np.full(N_ITEMS - 4, 0.4 / (N_ITEMS - 4))]
    items = rng.choice(N_ITEMS, indptr[-1], p=p / p.sum()).astype(np.int32)
    return indptr, items


def test_counts_contexts_and_scores_by_hand():
    indptr = np.array([0, 3, 5])
    items = np.array([1, 2, 1, 2, 0], np.int32)  # user 0: 1 2 1; user 1: 2 0
    c = markov.transition_counts(indptr, items, 3)
    want = np.zeros((3, 3))
    want[1, 2] = want[2, 1] = want[2, 0] = 1  # 1->2, 2->1 (user 0), 2->0 (user 1); never across users
    np.testing.assert_array_equal(c, want)
    ctx = markov.contexts(indptr, items, np.array([0, 1]), 3, pad=3)
    np.testing.assert_array_equal(ctx, [[1, 2, 1], [0, 2, 3]])
    counts = jnp.asarray(np.vstack([c, np.zeros((1, 3))]), jnp.float32)
    s = np.asarray(markov.chain_scores(counts, jnp.asarray(ctx), 0.5, 1.0))
    src, dst = markov.user_transitions(indptr, items, pad=3)
    np.testing.assert_array_equal(src, [[1, 2], [2, 3]])  # per user, padded
    np.testing.assert_array_equal(dst, [[2, 1], [0, 3]])
    row = lambda i: want[i] / (want[i].sum() + 1.0)  # noqa: E731
    np.testing.assert_allclose(s[0], row(1) + 0.5 * row(2) + 0.25 * row(1), rtol=1e-6)
    np.testing.assert_allclose(s[1], row(0) + 0.5 * row(2), rtol=1e-6)  # the padding context adds 0


def test_the_ascent_gradient_matches_finite_differences():
    indptr, items = _events()
    users = np.arange(indptr.size - 1)
    spec = tr.TransitionAttack(order=2, k=3, kappa=0.3, sources=6)
    sur = tr.fit_surrogate(indptr, items, N_ITEMS, users, np.ones((users.size, 2), bool), TARGETS, spec)
    x0 = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, (sur.sources.size, 2)), jnp.float32)

    def f(x):
        return tr.smoothed_hit(sur.scores(x, spec), sur.targets, sur.eligible, spec)

    g = np.asarray(jax.grad(f)(x0))
    x64 = np.asarray(x0, np.float64)
    h = 1e-2
    for i, j in [(0, 0), (1, 1), (2, 0), (5, 1)]:
        e = np.zeros_like(x64)
        e[i, j] = h
        fd = (float(f(jnp.asarray(x64 + e, jnp.float32))) - float(f(jnp.asarray(x64 - e, jnp.float32)))) / (2 * h)
        assert g[i, j] == pytest.approx(fd, rel=0.05, abs=2e-4), (i, j)
    assert np.abs(g).max() > 1e-4  # the check has something to check


def test_rounding_and_packing_keep_the_budget_and_the_layout():
    x = np.array([[2.6, 0.3], [1.05, 0.05]])
    n = tr.round_budget(x, 4)
    assert n.sum() == 4 and n[0, 0] == 3 and n[1, 0] == 1  # floors 2 + 1, then the largest remainder
    lengths = np.array([5, 4])
    seqs = tr.pack(n, np.array([7, 8]), TARGETS, lengths, 0, 6)
    assert np.all(np.sum(seqs >= 0, axis=1) == lengths)
    assert set(seqs[:, 1::2][seqs[:, 1::2] >= 0]) == {4}  # every odd event a target
    pairs = [(a, b) for r in seqs for a, b in zip(r[0::2], r[1::2]) if a >= 0 and b >= 0]
    assert sorted(pairs) == [(7, 4)] * 3 + [(8, 4)]  # exactly the rounded transitions


def test_the_optimized_fakes_beat_a_heuristic_on_the_surrogate():
    indptr, items = _events(seed=3, users=40)
    users = np.arange(indptr.size - 1)
    seen = np.stack(
        [np.bincount(np.repeat(users, np.diff(indptr))[items == t], minlength=users.size) > 0 for t in TARGETS], 1
    )
    spec = tr.TransitionAttack(k=3, kappa=0.2, steps=30, lr=1.0)
    sur = tr.fit_surrogate(indptr, items, N_ITEMS, users, ~seen, TARGETS, spec)
    lengths = np.diff(indptr)
    seqs, history = tr.transition_fakes(sur, 3, lengths, 0, 8, spec)
    band = fake_sequences("bandwagon", 3, lengths, np.bincount(items, minlength=N_ITEMS), TARGETS, 0, 8, selected=2)
    assert history[-1]["smoothed_hit"] > history[0]["smoothed_hit"]
    assert history[-1]["surrogate_hr"] == pytest.approx(tr.heuristic_budget_hr(sur, seqs, spec))
    assert history[-1]["surrogate_hr"] > tr.heuristic_budget_hr(sur, band, spec)


def test_a_non_finite_objective_is_an_error_naming_its_step(monkeypatch):
    indptr, items = _events()
    users = np.arange(indptr.size - 1)
    spec = tr.TransitionAttack(k=3, steps=4)
    sur = tr.fit_surrogate(indptr, items, N_ITEMS, users, np.ones((users.size, 2), bool), TARGETS, spec)
    monkeypatch.setattr(tr, "smoothed_hit", lambda *a: jnp.float32(jnp.nan))
    with pytest.raises(JaxrecError, match="not finite at step 0"):
        tr.optimize(sur, 10, spec)
