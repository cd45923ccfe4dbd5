"""Optimized poisoning (jaxrec.attacks.optimized): the hypergradient against finite differences,
members against one attack at a time, valid profiles, and a planted case with a known answer."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks import optimized as opt
from jaxrec.attacks import optimized_fakes, outer, poison
from jaxrec.attacks.scenario import fake_sets, scenario
from jaxrec.attacks.shilling import given_profiles, rating_stats
from jaxrec.data.graph import bipartite_graph
from jaxrec.data.interactions import Interactions
from jaxrec.data.synthetic import low_rank
from jaxrec.errors import JaxrecError
from jaxrec.models import MF, LightGCN
from jaxrec.models.lightgcn import lightgcn_inputs


def _tiny(n_real=12, n_items=10, slots=2, seed=0):
    """A tiny low-rank training set with ``slots`` fake-user rows after the real users."""
    inter = low_rank(n_real, n_items, rank=3, threshold=0.5, seed=seed)
    return Interactions(inter.users, inter.items, n_real + slots, n_items, source="tiny")


def _spec(model, prob_pairs, slots, n_items, epochs, unroll, warm=False, outer="logsigmoid", k=3):
    return opt.Spec(model, "bpr", 1e-3, 64, 0.05, epochs, unroll, warm, k, outer, 1.0, slots, n_items, prob_pairs)


def _model(name, train, dtype=jnp.float32):
    if name == "mf":
        return MF(train.n_users, train.n_items, dim=4, initializer="normal", init_std=0.1, dtype=dtype), None
    graph = lambda t: lightgcn_inputs(bipartite_graph(t, "segment_sum", capacity=len(t)))  # noqa: E731
    return LightGCN(train.n_users, train.n_items, dim=4, layers=2, propagation="segment_sum", dtype=dtype), graph


def _attack(spec, prob, profile, key=0):
    targets, lengths = jnp.asarray([1]), jnp.asarray([3] * spec.slots)
    att = opt.init_attack(spec, outer.outer_optimizer(), prob, profile, targets, lengths, jax.random.key(key))
    return att.replace(profile=profile)


# one compiled program per (spec, shapes), shared by the tests below (the bi-level and ensemble
# tests run the same single-surrogate spec on the same data)
_hyper = jax.jit(opt.hypergradient, static_argnums=0)


def _central_differences(f, w, h=1e-5):
    out = np.zeros(w.shape)
    for idx in np.ndindex(*w.shape):
        e = np.zeros(w.shape)
        e[idx] = h
        out[idx] = (float(f(w + e)) - float(f(w - e))) / (2 * h)
    return out


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_hypergradient_equals_central_finite_differences(name):
    """Float64 throughout (parameters, Adam's moments, the model's compute), every (fake slot,
    item) weight: the gradient through 3 epochs of BPR + Adam (LightGCN: also through the fake
    edges of the normalised graph) against central differences, at a fractional profile."""
    with jax.enable_x64(True):
        train = _tiny()
        model, inputs_of = _model(name, train, jnp.float64)
        prob, n_pairs = opt.problem(train, 12, 2, 64, inputs_of=inputs_of)
        spec = _spec(model, n_pairs, 2, train.n_items, epochs=3, unroll=3, warm=True)
        w = jnp.asarray(np.random.default_rng(1).uniform(0.2, 0.8, (2, train.n_items)))
        to64 = lambda x: x.astype(jnp.float64) if getattr(x, "dtype", None) == jnp.float32 else x  # noqa: E731
        start = jax.tree.map(to64, opt.fresh_surrogate(spec, prob.data, jax.random.key(0)))
        att = _attack(spec, prob, w).replace(surrogate=start)
        hyper = jax.jit(lambda a: opt.hypergradient(spec, prob, a)[:3])
        loss, _, grad = hyper(att)
        assert loss.dtype == jnp.float64 and grad.dtype == jnp.float64
        fd = _central_differences(lambda x: hyper(att.replace(profile=x))[0], np.asarray(w))
        assert np.abs(fd).max() > 1e-4  # the profile matters to the surrogate
        np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("unroll", [0, 2])
def test_bilevel_hypergradient_is_the_gradient_of_its_unrolled_epochs(unroll):
    """The bi-level attack trains a fresh surrogate for 4 epochs; its gradient is the gradient of
    the differentiated epochs (all: ``unroll=0``; the last 2, the earlier ones seeing the profile
    as a constant) started from the state before them -- the function the finite-difference test
    checks."""
    train = _tiny(seed=2)
    model, _ = _model("mf", train)
    prob, n_pairs = opt.problem(train, 12, 2, 64)
    spec = _spec(model, n_pairs, 2, train.n_items, epochs=4, unroll=unroll)
    w = jnp.asarray(np.random.default_rng(3).uniform(0.2, 0.8, (2, train.n_items)), jnp.float32)
    att = _attack(spec, prob, w)
    _, _, grad, _ = _hyper(spec, prob, att)
    differentiated = unroll or 4
    warm = _spec(model, n_pairs, 2, train.n_items, epochs=4, unroll=differentiated, warm=True)
    fresh = opt.fresh_surrogate(spec, prob.data, att.key)
    before = opt.train_surrogate(spec, fresh, prob.data, w, 4 - differentiated, 0)
    _, _, warm_grad, _ = _hyper(warm, prob, att.replace(surrogate=before))
    assert np.abs(np.asarray(grad)).max() > 0
    np.testing.assert_allclose(np.asarray(grad), np.asarray(warm_grad), rtol=1e-5, atol=1e-7)


def test_an_ensemble_averages_the_hypergradients_of_its_seeds():
    """``ensemble=3``: the loss and gradient are the means of three single-surrogate runs, each
    keyed by ``fold_in(key, j)``, j = 1..3. (The single-surrogate spec and data of the bi-level
    test with ``unroll=0``: its compiled program is reused.)"""
    train = _tiny(seed=2)
    model, _ = _model("mf", train)
    prob, n_pairs = opt.problem(train, 12, 2, 64)
    single = _spec(model, n_pairs, 2, train.n_items, epochs=4, unroll=0)
    w = jnp.asarray(np.random.default_rng(5).uniform(0.2, 0.8, (2, train.n_items)), jnp.float32)
    att = _attack(single, prob, w, key=7)
    loss, _, grad, _ = _hyper(dataclasses.replace(single, ensemble=3), prob, att)
    runs = [_hyper(single, prob, att.replace(key=jax.random.fold_in(att.key, j))) for j in (1, 2, 3)]
    assert len({float(r[0]) for r in runs}) == 3  # three different surrogates
    np.testing.assert_allclose(float(loss), np.mean([float(r[0]) for r in runs]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), np.mean([np.asarray(r[2]) for r in runs], 0), rtol=1e-4, atol=1e-7)


def test_a_surrogate_without_edge_gradients_is_refused():
    train = _tiny()
    model = LightGCN(train.n_users, train.n_items, dim=4, propagation="bcsr_vjp")
    with pytest.raises(JaxrecError, match="'bcsr_vjp' has no gradient with respect to its edges"):
        _spec(model, 10, 2, train.n_items, epochs=3, unroll=3)


def test_projection_keeps_exactly_the_filler_and_the_targets():
    scores = jax.random.normal(jax.random.key(0), (3, 12))
    lengths, targets = jnp.asarray([4, 0, 6]), jnp.asarray([2, 9])
    p = np.asarray(outer.project(scores, lengths, targets))
    assert set(np.unique(p)) <= {0.0, 1.0}
    np.testing.assert_array_equal(p.sum(1), [4 + 2, 0, 6 + 2])
    np.testing.assert_array_equal(p[[0, 2]][:, [2, 9]], 1.0)
    masked = np.asarray(scores).copy()
    masked[:, [2, 9]] = -np.inf
    for r, n in ((0, 4), (2, 6)):  # the filler is the row's n best non-target scores
        assert set(np.flatnonzero(p[r])) - {2, 9} == set(np.argsort(-masked[r])[:n])


def test_given_profiles_rate_the_chosen_items_and_targets_at_the_maximum():
    ratings = Interactions(np.arange(4), np.arange(4) * 2, 4, 8, ratings=np.array([1.0, 2.0, 4.0, 5.0]), source="r")
    stats = rating_stats(ratings)
    items = np.zeros((3, 8))
    items[0, [1, 4, 6]] = 1
    items[2, [0, 3]] = 1
    rated = given_profiles(items, stats, targets=[6])
    expected = np.zeros((3, 8))
    expected[0, [1, 4, 6]] = 5.0
    expected[2, [0, 3, 6]] = 5.0
    np.testing.assert_array_equal(rated, expected)  # row 1 had no filler: stays empty
    nuke = given_profiles(items, stats, targets=[6], intent="nuke", rating=4.0)
    np.testing.assert_array_equal(nuke[0, [1, 4, 6]], [4.0, 4.0, 1.0])


@pytest.fixture(scope="module")
def rated_scenario(rated_split):
    """The attack protocol on the shared rated data: sizes 2 and 3, two targets, filler 5."""
    return scenario(rated_split, (2, 3), 4.0, (), 2, "unpopular", 0, 5, 0.2)


def test_scenario_fakes_are_valid_profiles_and_touch_no_real_user(rated_scenario):
    """Two seeds x two sizes: each attack's profiles keep its starting filler sizes and the
    targets; injected, they add users after the real ones and leave every real rating as it was."""
    sc = rated_scenario
    init = {(s, c): x for (_, s, c), x in fake_sets(sc, ("bandwagon",), 2, 0).items()}
    model = MF(sc.split.n_users, sc.split.n_items, dim=4, initializer="normal", init_std=0.1)
    settings = optimized_fakes.Settings(epochs=3, unroll=2, batch=128, lr=0.05, steps=2, k=5, outer="hr", kappa=0.5)
    fakes, history = optimized_fakes.scenario_fakes(sc, model, settings, 2, init)
    members = [(s, c) for s in (0, 1) for c in (2, 3)]
    assert [(r["step"], r["seed"], r["size"]) for r in history] == [(t, s, c) for t in (1, 2) for s, c in members]
    real = sc.rated.train.select(sc.rated.train.users < sc.n_real)
    for (s, count), items in fakes.items():
        assert items.shape == (count, sc.split.n_items) and set(np.unique(items)) <= {0.0, 1.0}
        np.testing.assert_array_equal(items[:, sc.targets], 1.0)
        np.testing.assert_array_equal(items.sum(1), (init[s, count] > 0).sum(1))
        poisoned = poison.inject(sc.rated.train, given_profiles(items, sc.stats, sc.targets), sc.n_real)
        kept = poisoned.select(poisoned.users < sc.n_real)
        np.testing.assert_array_equal(
            np.c_[kept.users, kept.items, kept.ratings], np.c_[real.users, real.items, real.ratings]
        )
        assert set(poisoned.users[poisoned.users >= sc.n_real]) == set(sc.n_real + np.arange(count))


def _planted(slots=3):
    """Users 0-9 (group A) hold 4 of items 0-5, users 10-19 (group B) 4 of items 6-11; item 12
    (the target) and 13 nobody. The attack pushes the target to group A: its fakes should hold
    group A's items."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 4)
    items = np.concatenate([rng.choice(6, 4, replace=False) + (6 if u >= 10 else 0) for u in range(20)])
    return Interactions(users, items, 20 + slots, 14, source="planted")


def _planted_attacks(spec, prob, tx, keys, starts, lengths):
    m = len(keys)
    return opt.members_init(
        spec,
        tx,
        prob,
        jnp.asarray(starts, jnp.float32),
        jnp.full((m, 1), 12),
        jnp.asarray(lengths, jnp.int32),
        0,
        jax.vmap(jax.random.key)(jnp.asarray(keys)),
    )


@pytest.fixture(scope="module")
def planted():
    train = _planted()
    prob, n_pairs = opt.problem(train, 20, 3, 128, users=np.arange(10))
    model = MF(train.n_users, train.n_items, dim=8, initializer="normal", init_std=0.1)
    spec = opt.Spec(model, "bpr", 0.0, 128, 0.05, 30, 0, False, 3, "logsigmoid", 1.0, 3, 14, n_pairs)
    start = np.zeros((3, 14))
    start[:, [6, 7, 8]] = 1.0  # group B's items: the wrong answer
    return spec, prob, outer.outer_optimizer(0.5, 0.9), start


def test_the_attack_finds_the_planted_answer(planted):
    """From group B's items (the target in nobody's top 3), the optimized fakes move to group A's
    items and put the target in group A's top 3, as the known answer does."""
    spec, prob, tx, start = planted
    atts = _planted_attacks(spec, prob, tx, [0], start[None], [[3, 3, 3]])
    atts, history = opt.optimize(spec, tx, prob, atts, 15)
    final = np.asarray(atts.profile[0])
    np.testing.assert_array_equal(final[:, 12], 1.0)
    assert final[:, :6].sum() >= 2 / 3 * final[:, :12].sum()  # filler mostly group A's, none at first
    answer = np.zeros((3, 14))
    answer[:, [0, 1, 2, 12]] = 1.0
    measure = jax.jit(lambda a: opt.hypergradient(spec, prob, a)[:2])
    (start_loss, start_aux), (loss, aux), (answer_loss, answer_aux) = (
        measure(_one(atts, p)) for p in (np.c_[start[:, :12], np.ones(3), np.zeros(3)], final, answer)
    )
    # the planted structure (the answer's surrogate HR depends on the surrogate's draws: 0.8 for
    # this seed since a fake pair's negative is never its own positive, 1.0 before; 0.7 to 1.0
    # over seeds either way)
    assert start_aux["surrogate_hr"] == 0 and answer_aux["surrogate_hr"] >= 0.8
    assert aux["surrogate_hr"] >= 0.9 and loss < start_loss - 1.0
    assert history[0]["surrogate_hr"][0] == 0 and history[-1]["outer_loss"][0] < history[0]["outer_loss"][0]


def _one(atts, profile):
    """Member 0 of ``atts`` with ``profile``."""
    return jax.tree.map(lambda x: x[0], atts).replace(profile=jnp.asarray(profile, jnp.float32))


def test_members_equal_attacks_optimized_one_at_a_time(planted):
    """Three attacks (seeds, starting profiles, sizes: the third has one empty slot) in one vmapped
    program give what each gives alone."""
    spec, prob, tx, start = planted
    rng = np.random.default_rng(5)
    starts = np.stack([start, rng.permutation(start.T).T, np.roll(start, 3, axis=1)])
    lengths = np.array([[3, 3, 3], [3, 3, 3], [3, 3, 0]])
    spec = dataclasses.replace(spec, resample=True)  # each member its own surrogate seeds
    together, hist = opt.optimize(spec, tx, prob, _planted_attacks(spec, prob, tx, [0, 1, 2], starts, lengths), 3)
    for m in range(3):
        alone, alone_hist = opt.optimize(
            spec, tx, prob, _planted_attacks(spec, prob, tx, [m], starts[m : m + 1], lengths[m : m + 1]), 3
        )
        np.testing.assert_array_equal(np.asarray(together.profile[m]), np.asarray(alone.profile[0]))
        assert not np.asarray(together.profile[m])[lengths[m] == 0].any()
        for a, b in zip(hist, alone_hist):
            np.testing.assert_allclose(a["outer_loss"][m], b["outer_loss"][0], rtol=1e-5)


def _ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """EASE fitted by hand (Steck, WWW 2019): ``B = I - G^-1 / diag(G^-1)``, ``G = X^T X + lam I``."""
    inv = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - inv / np.diag(inv)[None, :]


def test_closed_form_scores_equal_ease_refit_on_the_injected_data():
    """Two fake rows over 7 of 10 candidate items: the closed-form surrogate's scores of the real
    users equal EASE refitted by hand on the candidates' columns of the real rows stacked with the
    injected profiles."""
    train = _tiny()
    cand = np.array([0, 1, 2, 4, 5, 7, 9])
    prob, _ = opt.problem(train, 12, 2, 64, candidates=cand, gram=True)
    profile = np.zeros((2, cand.size), np.float32)
    profile[0, [0, 3, 6]] = 1.0
    profile[1, [1, 2]] = 1.0
    x = np.zeros((12, train.n_items))
    x[train.users, train.items] = 1.0
    fake = np.zeros((2, train.n_items))
    fake[:, cand] = profile
    assert not np.allclose(_ease_reference(np.r_[x, fake][:, cand], 3.0), _ease_reference(x[:, cand], 3.0))
    want = x[np.asarray(prob.users)][:, cand] @ _ease_reference(np.r_[x, fake][:, cand], 3.0)
    got = opt.ease_scores(prob.gram, prob.seen[:, prob.candidates], jnp.asarray(profile), 3.0)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_closed_form_hypergradient_equals_central_finite_differences():
    """Float64, every (fake slot, item) weight at a fractional profile: the gradient through EASE's
    closed form (a matrix inverse) against central differences of the outer loss."""
    with jax.enable_x64(True):
        train = _tiny()
        prob, n_pairs = opt.problem(train, 12, 2, 64, gram=True)
        spec = dataclasses.replace(_spec(None, n_pairs, 2, train.n_items, epochs=1, unroll=0), closed=2.0)
        w = jnp.asarray(np.random.default_rng(1).uniform(0.2, 0.8, (2, train.n_items)))
        att = _attack(spec, prob, w)
        hyper = jax.jit(lambda a: opt.hypergradient(spec, prob, a)[:3])
        loss, _, grad = hyper(att)
        assert loss.dtype == jnp.float64 and grad.dtype == jnp.float64
        fd = _central_differences(lambda x: hyper(att.replace(profile=x))[0], np.asarray(w))
        assert np.abs(fd).max() > 1e-4
        np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())


def test_the_closed_form_attack_finds_the_planted_answer():
    """The planted case with EASE as the surrogate: from two of group B's items and an unrated one
    the fakes move to group A's items and put the target in group A's top 3 (for 8 of its 10
    users); three closed-form attacks as members equal each alone."""
    train = _planted()
    prob, n_pairs = opt.problem(train, 20, 3, 128, users=np.arange(10), gram=True)
    spec = opt.Spec(None, "bpr", 0.0, 128, 0.05, 1, 0, False, 3, "logsigmoid", 1.0, 3, 14, n_pairs, closed=1.0)
    tx = outer.outer_optimizer(0.5, 0.9)
    start = np.zeros((3, 14))
    start[:, [9, 10, 13]] = 1.0  # (group B's items alone are a stationary point here: they tie with the target)
    rng = np.random.default_rng(5)
    starts = np.stack([start, rng.permutation(start.T).T, np.roll(start, 3, axis=1)])
    lengths = np.array([[3, 3, 3], [3, 3, 3], [3, 3, 0]])
    together, history = opt.optimize(spec, tx, prob, _planted_attacks(spec, prob, tx, [0, 1, 2], starts, lengths), 15)
    final = np.asarray(together.profile[0])
    np.testing.assert_array_equal(final[:, 12], 1.0)
    assert final[:, :6].sum() == final[:, :12].sum() == 9  # every filler item group A's, none at first
    assert history[0]["surrogate_hr"][0] == 0 and history[-1]["surrogate_hr"][0] >= 0.8
    for m in range(3):
        alone, _ = opt.optimize(
            spec, tx, prob, _planted_attacks(spec, prob, tx, [m], starts[m : m + 1], lengths[m : m + 1]), 15
        )
        np.testing.assert_array_equal(np.asarray(together.profile[m]), np.asarray(alone.profile[0]))


def test_the_closed_attack_refuses_a_catalogue_it_cannot_invert():
    """All 40,981 items of a Gowalla-sized catalogue as candidates would be 6.7 GB per C x C
    matrix: one clear line naming optimized.candidates, before any work; 2,000 candidates pass."""
    from jaxrec.config.schema import OptimizedConfig
    from jaxrec.experiment.studies.attack import _check_closed

    with pytest.raises(JaxrecError, match=r"optimized.candidates: .* C = 40981 \(all items\) is more than 20000"):
        _check_closed(OptimizedConfig(candidates=0), 40_981)
    _check_closed(OptimizedConfig(candidates=2000), 40_981)
