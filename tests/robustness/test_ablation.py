"""Randomized ablation (Levine & Feizi, AAAI 2020) on the sequence contract: delta against a count
over every subset, what each vote's base sees, sampled votes against exact probabilities, the votes
as one program against a Python loop over votes, and the certificate against a brute force over
every substitution of up to r items (with a wrong bound caught by the same brute force)."""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.errors import JaxrecError
from jaxrec.models.sequential import SASRec
from jaxrec.robustness.ablation import (
    Ablation,
    ablated_windows,
    ablation_votes,
    check_ablation,
    chunk_votes,
    exact_votes,
    loop_votes,
    sequence_scorer,
)
from jaxrec.robustness.ablation_certificate import (
    ablation_delta,
    certified_curve,
    certify_ablation,
    radii,
    rank_bounds,
    smoothed_metrics,
)
from jaxrec.robustness.certificate import vote_bounds
from jaxrec.train.state import init_params

N_ITEMS = 5  # a tiny catalogue; the padding id is N_ITEMS
L = 7


def _window(items) -> np.ndarray:
    w = np.full(L, N_ITEMS, np.int32)
    if len(items):
        w[L - len(items) :] = items
    return w


def majority(variables, windows):
    """A hand base: each item's count in the window (ties: the lower id)."""
    return jax.nn.one_hot(windows, N_ITEMS).sum(axis=1)


def linear(variables, windows):
    """A hand base sensitive to positions: ``bias + sum_p E[p, w_p]`` (padding rows zero)."""
    return variables["bias"] + variables["E"][jnp.arange(windows.shape[1])[None, :], windows].sum(axis=1)


def _linear_variables(seed: int, w: int):
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(w, N_ITEMS + 1, N_ITEMS)).astype(np.float32)
    E[:, N_ITEMS] = 0.0
    return {"E": jnp.asarray(E), "bias": jnp.asarray(0.3 * rng.normal(size=N_ITEMS).astype(np.float32))}


@pytest.fixture(scope="module")
def sasrec():
    model = SASRec(n_users=1, n_items=N_ITEMS, dim=8, layers=1, heads=2, max_len=L, dropout=0.0)
    return model, init_params(model, jax.random.key(5))


# ------------------------------------------------------------------------------------------------
# delta and what the base sees


def test_delta_is_the_share_of_subsets_touching_r_changed_positions():
    for n, m in itertools.product(range(1, 8), range(1, 8)):
        for length in range(0, 9):
            n_u = min(n, length)
            m_u = min(m, n_u)
            subs = list(itertools.combinations(range(n_u), m_u))
            got = ablation_delta([length], m, n, 9)[0]
            for r in range(10):
                changed = set(range(min(r, n_u)))  # which r positions does not matter
                touching = sum(bool(changed & set(s)) for s in subs)
                assert got[r] == pytest.approx(touching / len(subs), abs=1e-15), (n, m, length, r)
    assert ablation_delta([50], 5, 50, 1)[0, 1] == pytest.approx(5 / 50)  # delta_1 = m / n


def test_each_vote_shows_m_of_the_last_n_items_in_order_right_aligned():
    spec = Ablation(keep=3, last=5, votes=40)
    lengths = [0, 1, 2, 3, 4, 5, 6, 7]
    windows = np.stack([_window(10 + np.arange(k)) for k in lengths])  # distinct ids: positions visible
    pad = 99
    windows[windows == N_ITEMS] = pad
    seen_subsets = [set() for _ in lengths]
    draw = jax.jit(
        jax.vmap(lambda t: ablated_windows(jnp.asarray(windows), jnp.arange(8), jax.random.key(1), t, spec, pad))
    )
    every = np.asarray(draw(jnp.arange(spec.votes)))
    assert every.shape == (spec.votes, 8, spec.keep + 1)
    for got in every:
        for j, k in enumerate(lengths):
            real = got[j][got[j] != pad]
            m_u = min(spec.keep, min(spec.last, k))
            assert real.size == m_u and np.all(got[j][: got.shape[1] - m_u] == pad)  # right-aligned
            last_items = 10 + np.arange(max(0, k - spec.last), k)
            assert set(real) <= set(last_items) and np.all(np.diff(real) > 0)  # the last n, in order
            seen_subsets[j].add(tuple(real))
    # every subset of the 5 most recent items is drawn (40 draws of 10 subsets)
    assert len(seen_subsets[-1]) == math.comb(5, 3) and len(seen_subsets[3]) == 1


def test_sampled_votes_converge_to_the_exact_probabilities():
    spec = Ablation(keep=2, last=5, votes=3000, n_votes=2)
    variables = _linear_variables(0, spec.keep + 1)
    windows = np.stack([_window([0, 1, 2, 3, 4, 0]), _window([4, 4, 1]), _window([2, 3, 0, 1, 1, 4, 2])])
    counts = ablation_votes(linear, variables, windows, np.arange(3), jax.random.key(2), spec, n_items=N_ITEMS)
    for j, w in enumerate(windows):
        exact, S = exact_votes(linear, variables, w[None], spec, N_ITEMS)
        p = exact[0] / S
        sd = np.sqrt(p * (1 - p) / spec.votes)
        assert np.all(np.abs(counts[j] / spec.votes - p) <= 5 * sd + 1e-9)
        assert counts[j].sum() == spec.votes * spec.n_votes


def test_votes_as_one_program_equal_a_loop_over_votes(sasrec):
    """A tiny SASRec: the one program (chunks of 4 users, a padded last chunk) against a Python
    loop over the votes of all 7 users at once. Blocks of vmapped votes (13 = 4 + 4 + 4 + 1) on
    the majority base, whose integer scores round alike in any batch: the same counts too."""
    model, params = sasrec
    score = sequence_scorer(model)
    rng = np.random.default_rng(0)
    windows = np.stack([_window(rng.integers(0, N_ITEMS, int(k))) for k in rng.integers(0, L + 1, 7)])
    users = np.arange(100, 107, dtype=np.int32)
    spec = Ablation(keep=2, last=5, votes=13, n_votes=2)
    key = jax.random.key(3)
    valid = np.ones(7, bool)
    whole = ablation_votes(score, params, windows, users, key, spec, n_items=N_ITEMS, chunk=4)
    loop = np.asarray(loop_votes(score, params, windows, users, valid, key, spec=spec, n_items=N_ITEMS))
    np.testing.assert_array_equal(whole, loop)
    assert np.all(whole.sum(axis=1) == spec.votes * spec.n_votes)
    blocks = ablation_votes(majority, None, windows, users, key, spec, n_items=N_ITEMS, chunk=4, block=4)
    one = np.asarray(chunk_votes(majority, None, windows, users, valid, key, spec=spec, block=1, n_items=N_ITEMS))
    np.testing.assert_array_equal(blocks, one)


# ------------------------------------------------------------------------------------------------
# the certificate against a brute force over every substitution of up to R items


@functools.cache
def _substitutions_of(window: tuple, max_r: int) -> tuple[np.ndarray, np.ndarray]:
    return _substitutions(np.array(window, np.int32), max_r)


def _substitutions(window: np.ndarray, max_r: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window with up to ``max_r`` real positions (any, old ones too) set to any item, and
    its number of changed positions."""
    real = np.flatnonzero(window != N_ITEMS)
    out = [window]
    for k in range(1, min(max_r, real.size) + 1):
        for pos in itertools.combinations(real, k):
            for items in itertools.product(range(N_ITEMS), repeat=k):
                w = window.copy()
                w[list(pos)] = items
                out.append(w)
    out = np.stack(out)
    return out, np.sum(out != window, axis=1)


MAX_R = 3
# the substituted windows of 7 real positions, up to 3 changed: all padded to one shape (one compilation)
CAP = 1 + 7 * N_ITEMS + 21 * N_ITEMS**2 + 35 * N_ITEMS**3


def _brute_force(score, variables, spec: Ablation, windows, top_n: int, scales=(1.0,)):
    """Per window: exact vote probabilities over every subset, and the same for every
    substitution of up to ``MAX_R`` items. For each ``scale`` (``delta`` times it: 1 is the
    certificate, less a wrong one), certify from the exact probabilities and collect the
    violations: an item ranked worse than its rank bound, or a certified item of the top-``N``
    pushed out. Returns ``{scale: (radii of the top-N items, violations)}``."""
    out = {s: ([], []) for s in scales}
    for w in windows:
        subs, dist = _substitutions_of(tuple(w.tolist()), MAX_R)
        padded = np.concatenate([subs, np.repeat(subs[:1], CAP - len(subs), 0)])
        counts, S = exact_votes(score, variables, padded, spec, N_ITEMS)
        counts = counts[: len(subs)]
        p = counts[0] / S
        top = np.argsort(-counts[0], kind="stable")[:top_n]
        # each item's worst rank under the substitutions (ties count against it): [P, N_ITEMS]
        worst = np.sum(counts[:, None, :] >= counts[:, :, None], axis=2)
        for scale, (all_radii, broken) in out.items():
            delta = ablation_delta([int(np.sum(w != N_ITEMS))], spec.keep, spec.last, MAX_R) * scale
            bound = rank_bounds(p[None], p[None], np.arange(N_ITEMS)[None], delta)[0]  # [N_ITEMS, R + 1]
            r_top = radii(bound[top], top_n)
            all_radii.extend(r_top.tolist())
            for r in range(MAX_R + 1):
                seen = worst[dist <= r].max(axis=0)
                for i in np.flatnonzero(seen > bound[:, r]):
                    broken.append((w.tolist(), int(i), r, int(seen[i]), int(bound[i, r])))
            for i, ri in zip(top, r_top):
                if ri >= 0 and worst[dist <= ri, i].max() > top_n:
                    broken.append((w.tolist(), int(i), int(ri), "pushed out of the top-N"))
    return {s: (np.array(r), b) for s, (r, b) in out.items()}


WINDOWS = [
    _window([3, 3, 3, 3, 3, 3, 3]),
    _window([0, 1, 2, 3, 4, 0, 1]),
    _window([2, 2, 4, 2, 2, 1]),
    _window([4, 1, 4, 4]),
    _window([1, 0]),
    _window([3, 3, 2, 3, 3, 3, 3]),
]


@pytest.mark.parametrize(
    "base,spec,top_n",
    [
        ("majority", Ablation(keep=2, last=5, n_votes=1), 1),
        ("linear", Ablation(keep=1, last=6, n_votes=2), 2),
        ("linear", Ablation(keep=2, last=5, n_votes=1), 1),
        ("sasrec", Ablation(keep=1, last=6, n_votes=1), 1),
        ("sasrec", Ablation(keep=2, last=5, n_votes=2), 2),
    ],
)
def test_no_substitution_of_r_items_breaks_the_certificate(sasrec, base, spec, top_n):
    """Every substitution of up to 3 items (old positions too) with every item of the catalogue:
    no item ranks worse than its bound, no certified item leaves the top-N. The same brute force
    catches the bound with ``delta / 2`` on every base."""
    if base == "sasrec":
        score, variables = sequence_scorer(sasrec[0]), sasrec[1]
    elif base == "linear":
        score, variables = linear, _linear_variables(1, spec.keep + 1)
    else:
        score, variables = majority, None
    got = _brute_force(score, variables, spec, WINDOWS, top_n, scales=(1.0, 0.5))
    r, broken = got[1.0]
    assert not broken, broken[:5]
    assert np.any(r >= 1) and r.max() < MAX_R, r  # not vacuous, and checked past every radius
    assert got[0.5][1], "delta / 2 went uncaught"


def test_a_wrong_bound_is_caught_by_the_same_brute_force():
    """On the majority base the true bound is tight: a window of one item loses it to a lower id
    at two substitutions, the certificate says 1; ``delta / 2`` says 3, and no ``delta`` at all is
    caught too."""
    spec = Ablation(keep=2, last=5, n_votes=1)
    got = _brute_force(majority, None, spec, WINDOWS[:1], 1, scales=(1.0, 0.5, 0.0))
    r, broken = got[1.0]
    assert not broken and r.tolist() == [1]  # delta_1 = 0.4 < 1/2 <= delta_2 = 0.7
    r, broken = got[0.5]
    assert r.tolist() == [3] and any(b[-1] == "pushed out of the top-N" and b[2] == 3 for b in broken)
    assert got[0.0][1]


# ------------------------------------------------------------------------------------------------
# from counts: the bounds, the curve, the clean metrics, bad input


def test_certify_from_counts_uses_clopper_pearson_per_user_bonferroni():
    counts = np.array([[900, 80, 20, 0], [300, 300, 250, 150], [0, 0, 1000, 0]])
    lengths = np.array([50, 50, 3])
    held = np.array([0, 3, -1])
    cert = certify_ablation(counts, 1000, lengths, keep=5, last=50, top_n=1, alpha=0.01, max_radius=6, held=held)
    lo, hi = vote_bounds(counts, 1000, 0.01, 2 * 4)
    delta = ablation_delta(lengths, 5, 50, 6)
    np.testing.assert_array_equal(cert.top[:, 0], [0, 0, 2])
    np.testing.assert_array_equal(cert.radius, radii(rank_bounds(lo, hi, cert.top, delta), 1))
    # user 0: the largest r with lower(900 / 1000) - delta_r > upper(80 / 1000) + delta_r
    by_hand = max(r for r in range(7) if lo[0, 0] - delta[0, r] > hi[0, 1] + delta[0, r])
    assert 0 < by_hand < 6 and by_hand == cert.radius[0, 0] and cert.radius[1, 0] == -1
    # user 2 has 3 items, m = 5: every vote sees all of them, so nothing survives one substitution
    assert cert.radius[2, 0] == 0
    np.testing.assert_array_equal(cert.held_rank[2], 0)
    curve = certified_curve(cert.held_rank, 1)
    np.testing.assert_allclose(curve["hit@1"], np.where(np.arange(7) <= by_hand, 0.5, 0.0))
    np.testing.assert_allclose(curve["ndcg@1"], curve["hit@1"])
    clean = smoothed_metrics(counts, held, 2)
    assert clean["hit@2"] == 0.5 and clean["ndcg@2"] == 0.5  # user 1's item 3 ranks 4th


def test_bad_input_is_one_line_each():
    with pytest.raises(JaxrecError, match=r"keep \(m=5\).*last - 1 \(n=5\)"):
        check_ablation(Ablation(keep=5, last=5), 10, 50)
    with pytest.raises(JaxrecError, match="max_len"):
        check_ablation(Ablation(keep=2, last=60), 10, 50)
    with pytest.raises(JaxrecError, match="votes"):
        check_ablation(Ablation(keep=2, last=5, votes=0), 10, 50)
    with pytest.raises(JaxrecError, match="n_votes"):
        check_ablation(Ablation(keep=2, last=5, n_votes=11), 10, 50)
    with pytest.raises(JaxrecError, match="typed key"):
        ablation_votes(
            majority, None, np.zeros((1, L), np.int32), [0], jax.random.PRNGKey(0), Ablation(1, 2), n_items=N_ITEMS
        )
