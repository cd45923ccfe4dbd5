"""PORE's certificate (Jia et al., USENIX Security 2023) and the bagged votes behind it."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import top_by_probability
from scipy import stats

from jaxrec.config import ModelConfig
from jaxrec.experiment import build_model
from jaxrec.robustness import bagging, certificate
from jaxrec.robustness.certificate import certified_counts, rho_delta, vote_bounds
from jaxrec.train.state import adam, create_members


def test_rho_and_delta_by_hand():
    rho, delta = rho_delta(5, 2, [0, 1, 2])
    np.testing.assert_allclose(rho, [1.0, math.comb(5, 2) / math.comb(6, 2), math.comb(5, 2) / math.comb(7, 2)])
    np.testing.assert_allclose(delta, [0.0, 2 / 6 - rho[1] * 2 / 5, 2 / 7 - rho[2] * 2 / 5])


def test_vote_bounds_are_clopper_pearson_with_bonferroni():
    counts = np.array([[0, 3, 10], [7, 10, 1]])
    lo, hi = vote_bounds(counts, 10, 0.01, 6)
    a = 0.01 / 6
    for c, low, high in zip(counts.ravel(), lo.ravel(), hi.ravel()):
        assert low == (0.0 if c == 0 else pytest.approx(stats.beta.ppf(a, c, 11 - c)))
        assert high == (1.0 if c == 10 else pytest.approx(stats.beta.isf(a, c + 1, 10 - c)))
        assert low <= c / 10 <= high


def test_certify_and_curve_take_plain_vote_counts():
    """``certify`` is :func:`certified_counts` on the Clopper-Pearson bounds of the counts, and
    ``curve`` averages ``r / N`` and ``r / |I_u|`` over the users with a relevant item."""
    votes = np.array([[9, 1, 0, 0], [0, 8, 7, 0], [2, 2, 2, 2]])
    relevant = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], bool)
    fakes = np.arange(3)
    r = certificate.certify(votes, 10, relevant, None, 2, 1, 5, 0.1, fakes)
    lo, hi = vote_bounds(votes, 10, 0.1, votes.size)
    np.testing.assert_array_equal(r, certified_counts(lo, hi, relevant, 2, 1, 3, 5, fakes))
    precision, recall = certificate.curve(np.array([[1, 0], [2, 1], [0, 0]]), relevant, 2)
    np.testing.assert_allclose(precision, [(1 / 2 + 2 / 2) / 2, (0 + 1 / 2) / 2])
    np.testing.assert_allclose(recall, [(1 + 1) / 2, (0 + 1 / 2) / 2])


# ------------------------------------------------------------------------------------------------
# brute force: every way to inject e fake users into a tiny data set


def _base_top1(profiles: np.ndarray, sample: tuple, n_real: int) -> dict:
    """The item-based base trained on the users ``sample`` (rows of ``profiles``, fakes included):
    each real user's best unseen item (ties: the lower id)."""
    x = profiles[list(sample)].astype(np.float64)
    co = x.T @ x
    d = np.diag(co)
    jac = co / np.maximum(d[:, None] + d[None, :] - co, 1.0)
    out = {}
    for u in sample:
        if u < n_real:
            scores = np.where(profiles[u] > 0, -np.inf, profiles[u] @ jac)
            out[u] = int(np.argmax(scores))
    return out


def _probabilities(profiles: np.ndarray, n_real: int, s: int) -> np.ndarray:
    """``[n_real, I]`` exact vote probabilities over every sample of ``s`` of the users."""
    p = np.zeros((n_real, profiles.shape[1]))
    samples = list(itertools.combinations(range(profiles.shape[0]), s))
    for sample in samples:
        for u, i in _base_top1(profiles, sample, n_real).items():
            p[u, i] += 1
    return p / len(samples)


def test_no_injection_of_e_fake_users_breaks_the_certified_r(monkeypatch):
    rng = np.random.default_rng(3)
    n, m, s, top_n = 5, 5, 2, 2
    real = np.zeros((n, m), np.int8)
    for u in range(n):
        real[u, rng.choice(m, 2, replace=False)] = 1
    unseen = real == 0
    p = _probabilities(real, n, s)
    relevant = top_by_probability(p, unseen, top_n)  # certify the clean ensemble's own top-N
    fakes = np.array([1, 2])
    r = certified_counts(p, p, relevant, top_n, 1, n, s, fakes, candidates=unseen)  # exact p: no CI
    assert r[:, 0].sum() > 0 and np.all(r[:, 1] <= r[:, 0])  # something is certified, no more at e=2
    profiles = [np.array(b, np.int8) for b in itertools.product((0, 1), repeat=m) if any(b)]
    worst = np.full((n, fakes.size), top_n)  # the fewest relevant items kept by any injection
    best_hr = np.zeros((m, fakes.size))  # every item as a target: its highest HR@1 by any injection
    for k, e in enumerate(fakes):
        for chosen in itertools.combinations_with_replacement(range(len(profiles)), int(e)):
            poisoned = np.vstack([real, *[profiles[c][None] for c in chosen]])
            probabilities = _probabilities(poisoned, n, s)
            top, top1 = top_by_probability(probabilities, unseen, top_n), top_by_probability(probabilities, unseen, 1)
            worst[:, k] = np.minimum(worst[:, k], (top & relevant).sum(1))
            best_hr[:, k] = np.maximum(best_hr[:, k], (top1 & unseen).sum(0) / unseen.sum(0))
    assert np.all(worst >= r), (worst, r)
    bound = certificate.target_hr_bound(p, p, np.arange(m), unseen, 1, n, s, fakes, candidates=unseen)
    assert np.all(best_hr <= bound + 1e-12), (best_hr, bound)
    assert np.any(bound < 1) and np.any((bound < 1) & (best_hr == bound))  # non-trivial, and tight here
    # the brute force has teeth: certifying everything, or a bound with half of delta, is broken
    assert np.any(worst < top_n)
    full = certificate.rho_delta
    monkeypatch.setattr(certificate, "rho_delta", lambda n, s, e: (full(n, s, e)[0], full(n, s, e)[1] / 2))
    half = certified_counts(p, p, relevant, top_n, 1, n, s, fakes, candidates=unseen)
    assert np.any(worst < half)
    monkeypatch.undo()  # the target bound of the clean data (e = 0) is broken by the injections
    clean = certificate.target_hr_bound(p, p, np.arange(m), unseen, 1, n, s, np.zeros(2, int), candidates=unseen)
    assert np.any(best_hr > clean)


# ------------------------------------------------------------------------------------------------
# votes on device equal a loop over the sub-models


@pytest.fixture(scope="module")
def votes_setup(tiny_split):
    train = tiny_split.train
    matrix = jnp.asarray(train.dense() > 0, jnp.float32)
    subsets = bagging.draw_subsets(train.n_users, 7, 5, seed=1)
    subsets = np.vstack([subsets, np.full((1, 7), -1, np.int32)])  # a padding base
    return train, matrix, matrix > 0, subsets


def _loop_votes(scores_of, subsets, seen, n_votes, shape):
    votes = np.zeros(shape, np.int64)
    for m, users in enumerate(subsets):
        if users[0] < 0:
            continue
        scores = np.where(np.asarray(seen)[users], -np.inf, np.asarray(scores_of(m, users)))
        for row, u in enumerate(users):
            votes[u, np.argsort(-scores[row], kind="stable")[:n_votes]] += 1
    return votes


def test_subsets_are_without_replacement_and_reproducible():
    a = bagging.draw_subsets(50, 20, 30, seed=4, chunk=2)
    assert all(len(set(row)) == 20 for row in a) and a.min() >= 0 and a.max() < 50
    np.testing.assert_array_equal(a, bagging.draw_subsets(50, 20, 30, seed=4, chunk=2))
    assert not np.array_equal(a, bagging.draw_subsets(50, 20, 30, seed=4, chunk=3))


def test_item_based_votes_equal_a_loop_over_the_bases(votes_setup):
    train, matrix, seen, subsets = votes_setup
    x = np.asarray(matrix, np.float64)
    users = subsets[0]
    co = x[users].T @ x[users]
    d = np.diag(co)
    want = x[users] @ (co / np.maximum(d[:, None] + d[None, :] - co, 1.0))  # Jaccard by hand
    np.testing.assert_allclose(np.asarray(bagging.item_scores(matrix, jnp.asarray(users))), want, rtol=1e-5)
    shape = (train.n_users, train.n_items)
    votes = bagging.item_votes(jnp.zeros(shape, jnp.int32), matrix, seen, jnp.asarray(subsets), 2)
    loop = _loop_votes(lambda m, u: bagging.item_scores(matrix, jnp.asarray(u)), subsets, seen, 2, shape)
    np.testing.assert_array_equal(np.asarray(votes), loop)
    assert int(votes.sum()) == 5 * 7 * 2  # the padding base voted for nothing


def test_trained_bases_votes_equal_a_loop_over_the_members(votes_setup):
    train, _, seen, subsets = votes_setup
    model, inputs = build_model(ModelConfig(name="mf", dim=8), train)
    keys = jax.vmap(jax.random.key)(jnp.arange(len(subsets), dtype=jnp.uint32))
    params = create_members(model, keys, adam(), inputs, {"l2": [0.0] * len(subsets)}, [1e-3] * len(subsets)).params
    shape = (train.n_users, train.n_items)
    votes = bagging.model_votes(jnp.zeros(shape, jnp.int32), model, params, inputs, seen, jnp.asarray(subsets), 3)

    def scores_of(m, users):
        variables = {**jax.tree.map(lambda a: a[m], params), **inputs}
        return model.apply(variables, jnp.asarray(users), method="score_all")

    np.testing.assert_array_equal(np.asarray(votes), _loop_votes(scores_of, subsets, seen, 3, shape))


# ------------------------------------------------------------------------------------------------
# the study: sub-models as members equal sub-models trained alone


def _certify_cfg(tmp_path, **certify):
    from jaxrec.config import CertifyConfig, Config, EvalConfig, TrainConfig

    return Config(
        name="cert",
        output_dir=str(tmp_path),
        model=ModelConfig(name="mf", dim=8),
        train=TrainConfig(epochs=2, batch_size=16, lr=0.01),
        eval=EvalConfig(ks=(5,)),
        certify=CertifyConfig(**{"sub_models": 5, "subsample": 9, "top_n": 3, "votes": 2, "chunk": 4, **certify}),
    )


def test_trained_sub_models_as_members_vote_like_each_trained_alone(tmp_path, tiny_split):
    from jaxrec.experiment import certified
    from jaxrec.experiment.training import train_members

    cfg = _certify_cfg(tmp_path)
    ens = certified.ensemble(cfg, tiny_split, "model")  # 2 chunks of 4; the last one has 1 real base
    seen = jnp.asarray(bagging.pairs_mask(tiny_split))
    counts = np.bincount(tiny_split.train.users, minlength=tiny_split.n_users)
    chunks = list(certified._chunks(cfg, tiny_split.n_users))
    capacity = max(int(counts[s].sum(axis=1).max()) for _, s, _ in chunks)
    loop = jnp.zeros((tiny_split.n_users, tiny_split.n_items), jnp.int32)
    for k, subsets, real in chunks:
        for m in range(real):
            one = cfg.train.__class__(**{**cfg.train.__dict__, "seed": cfg.train.seed + k * len(subsets) + m})
            train = tiny_split.train.select(np.isin(tiny_split.train.users, subsets[m]))
            run = train_members(
                [cfg.__class__(**{**cfg.__dict__, "train": one})],
                tiny_split,
                progress=False,
                trains=[train],
                capacity=capacity,
                test=False,
            )
            tr = run.training
            loop = bagging.model_votes(
                loop, tr.model, run.fit.best, tr.inputs, seen, jnp.asarray(subsets[m : m + 1]), 2
            )
    np.testing.assert_array_equal(ens.votes, np.asarray(loop))
    assert ens.votes.sum() == 5 * 9 * 2 and ens.traces == 1  # every chunk ran one compiled program


def test_the_study_certifies_and_writes_its_report(tmp_path):
    from jaxrec.data import random_ratio
    from jaxrec.data.synthetic import power_law
    from jaxrec.experiment.studies import run_study

    split = random_ratio(power_law(40, 30, 400, clusters=3, noise=0.0, seed=1), (0.8, 0.2), seed=0)  # 3 tastes
    cfg = _certify_cfg(
        tmp_path, sub_models=160, subsample=12, chunk=32, max_fakes=3, alpha=0.5, top_n=5, extrapolate=160
    )
    result = run_study("certify", cfg, split=split, progress=False)
    rows = {(r["base"], r["fakes"]): r for r in result.rows}
    bases = ("item", "mf", "item (extrapolated)", "mf (extrapolated)")
    assert set(rows) == {(b, e) for b in bases for e in range(4)}
    for b in ("item", "mf"):  # extrapolated to its own T: the same votes, the same certificate
        for e in range(4):
            assert rows[f"{b} (extrapolated)", e]["certified_precision@5"] == rows[b, e]["certified_precision@5"]
    for b in ("item", "mf"):  # no more items certified as e grows
        p = [rows[b, e]["certified_precision@5"] for e in range(4)]
        assert all(x >= y for x, y in zip(p, p[1:])), (b, p)
    assert rows["item", 0]["certified_precision@5"] > rows["item", 2]["certified_precision@5"] > 0
    for b in ("item", "mf"):  # the targets' HR bound only grows with e
        h = [rows[b, e]["target_hr_bound@5"] for e in range(4)]
        assert all(0 <= x <= y <= 1 for x, y in zip(h, h[1:])), (b, h)
    text = (result.run_dir / "report.md").read_text()
    assert "certified_precision@5" in text and (result.run_dir / "certified_precision@5.png").is_file()
    with np.load(result.run_dir / "certified_r.npz") as f:
        assert f["item"].shape == (split.n_users, 4)


def test_certify_config_errors(tmp_path, tiny_split):
    from jaxrec.errors import JaxrecError
    from jaxrec.experiment.studies import certify

    with pytest.raises(JaxrecError, match="certify.subsample: 99 is more than the 30 users"):
        certify.check(_certify_cfg(tmp_path, subsample=99), split=tiny_split)
    bad = tmp_path / "100k_200_1_100000_sar_default"
    bad.mkdir()
    (bad / "frequency_aggregation_1.txt").write_text("[(1,5);(2,3)\n(4,x)]\n")
    (bad / "test_1.csv").write_text("userID,itemID,rating,timestamp\n1,2,4.0,0\n")
    with pytest.raises(JaxrecError, match=r"certify.reference\[0\]: .*frequency_aggregation_1.txt, line 2"):
        certify.check(_certify_cfg(tmp_path, reference=(str(bad),)), split=tiny_split)
