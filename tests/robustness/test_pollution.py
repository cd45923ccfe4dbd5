"""Profile pollution: the k-sweep's windows against separate runs and a hand check of every step,
k = 0 against the clean evaluator, the gradient-guided single substitution against a brute force
over every (position, item), the target rows against a hand count, and the bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import timed_events_csv

from jaxrec.config import DataConfig, ModelConfig
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import rank_users, score_function, split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.models import build_model
from jaxrec.robustness.pollution import (
    Pollution,
    objective,
    pollute,
    polluted_windows,
    pollution_sweep,
    target_rows,
)
from jaxrec.train.state import init_params

MAX_LEN = 6
N_ITEMS = 20
CHUNK = 8  #: the rankings' chunk (the study's eval.chunk too)
TARGETS = np.array([2, 5])  #: target item indices (the study's pollution_targets too)
# the sweep the robustness study runs for its gradient attack: the tests below use it too, so
# its programs (untargeted and targeted, same shapes) compile once for the module
SPEC = Pollution(max_k=2, candidates=3)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    # short windows: padding on the left, exhausted users
    path = timed_events_csv(tmp_path_factory.mktemp("p"), 24, N_ITEMS, (3, 10), seed=7)
    return load_split(DataConfig(dataset=str(path), split="leave_one_out"), sequential=True)


@pytest.fixture(scope="module")
def victim(split):
    cfg = ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0)
    model, _ = build_model(cfg, split.train)
    params = init_params(model, jax.random.key(3))
    rankings = {
        p: split_ranking(split, "test", CHUNK, max_len=MAX_LEN, mask_history=False, protocol=p, negatives=5)
        for p in ("full", "sampled")
    }
    return model, params, rankings


def _windows(model, params, ranking, spec, targets=None):
    w = polluted_windows(model, params, spec, ranking, targets, jax.random.key(0))
    mask = np.asarray(ranking.mask).reshape(-1)
    return np.asarray(w).reshape(w.shape[0], -1, MAX_LEN)[:, mask]


@pytest.mark.parametrize("attack", ["gradient", "random"])
def test_each_k_substitutes_one_more_real_position_with_another_real_item(victim, attack):
    model, params, rankings = victim
    w = _windows(model, params, rankings["full"], Pollution(attack, max_k=4, candidates=3))
    clean = w[0]
    real = clean < model.n_items
    for k in range(1, 5):
        changed = w[k] != clean
        assert np.all(~changed[~real])  # padding never touched
        assert np.all(w[k][changed] < model.n_items)  # a real item, never padding
        # exactly min(k, real items) positions substituted, and step k keeps step k - 1's
        np.testing.assert_array_equal(changed.sum(1), np.minimum(k, real.sum(1)))
        assert np.all((w[k] == w[k - 1]) | (w[k - 1] == clean))


@pytest.mark.parametrize("positions", ["once", "greedy"])
def test_the_sweep_equals_separate_runs_at_every_k(victim, positions):
    """One program over k = 0..K against a Python loop calling the attack with K = k."""
    model, params, rankings = victim
    spec = SPEC._replace(positions=positions)
    one = pollution_sweep(model, params, rankings, spec, ks=(5,))
    for k in range(1, spec.max_k + 1):
        alone = pollution_sweep(model, params, rankings, spec._replace(max_k=k), ks=(5,))
        for p in rankings:
            for m in ("ndcg@5", "hit@5"):
                assert one.users[p][m][k] == pytest.approx(alone.users[p][m][k], abs=1e-6)


def test_k0_is_the_clean_ranking(victim):
    model, params, rankings = victim
    out = pollution_sweep(model, params, rankings, SPEC, ks=(5,))
    score = jax.jit(lambda r: rank_users(score_function(model, params), r, (5,)).metrics)
    for p, r in rankings.items():
        clean = score(r)
        m = np.asarray(r.mask)
        for name in ("ndcg@5", "hit@5"):
            assert out.users[p][name][0] == pytest.approx(float(np.asarray(clean[name])[m].mean()), abs=1e-6)
    assert out.exhausted[0] == 0 and out.exhausted[1] == 0


def test_the_gradient_single_substitution_reaches_half_the_brute_force_best(split):
    """Every (position, item) substitution of every user tried: the gradient-guided one (with its
    candidate search) raises the adversary's objective at least half as much as the best."""
    cfg = ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0)
    model, _ = build_model(cfg, split.train)
    params = init_params(model, jax.random.key(11))
    ranking = split_ranking(split, "test", 32, max_len=MAX_LEN, mask_history=False)
    cache = model.apply(params, method="embeddings")
    mask = np.asarray(ranking.mask).reshape(-1)
    window = jnp.asarray(np.asarray(ranking.queries).reshape(-1, MAX_LEN)[mask])
    truth = jnp.asarray(np.asarray(ranking.targets)[..., 0].reshape(-1)[mask])

    @jax.jit
    def goal(w):
        return objective(model, params, cache, model.apply(params, w, method="embed"), w, truth, None)

    clean = goal(window)
    items = jnp.arange(model.n_items)

    @jax.jit
    def best_at(p):  # [U] the best objective over every item at position p (padding stays)
        trials = jax.vmap(lambda i: window.at[:, p].set(jnp.where(window[:, p] < model.n_items, i, window[:, p])))
        return jnp.max(jax.vmap(goal)(trials(items)), axis=0)

    best = np.max([np.asarray(best_at(p) - clean) for p in range(MAX_LEN)], axis=0)
    spec = Pollution(max_k=1, candidates=5, min_cos=-3.0)
    attack = jax.jit(
        lambda s: pollute(model, params, cache, s, window, truth, None, jax.random.key(0))[1], static_argnums=0
    )
    one = attack(spec)
    gained = np.asarray(goal(one) - clean)
    assert np.all(np.asarray(one != window).sum(1) == 1)
    print(f"gradient {gained.mean():.4f} vs brute-force best {best.mean():.4f}")
    assert best.mean() > 0 and gained.mean() >= 0.5 * best.mean(), (gained.mean(), best.mean())
    assert gained.mean() > np.asarray(goal(attack(spec._replace(attack="random"))) - clean).mean()


def test_target_rows_hold_every_eligible_pair(victim, split):
    model, params, rankings = victim
    parts = [split.train, split.valid, split.test]
    rows = {p: target_rows(r, parts, TARGETS, CHUNK) for p, r in rankings.items()}
    users = np.asarray(rankings["sampled"].users).reshape(-1)[np.asarray(rankings["sampled"].mask).reshape(-1)]
    expected = 0
    for t in TARGETS:
        for u in users:
            seen = any(np.any((part.users == u) & (part.items == t)) for part in parts)
            expected += not seen
    for p in rankings:  # the same users under both protocols
        assert rows[p].target.size == expected
    cand = np.asarray(rows["sampled"].data.candidates).reshape(-1, 6)[np.asarray(rows["sampled"].data.mask).reshape(-1)]
    np.testing.assert_array_equal(cand[:, 0], TARGETS[rows["sampled"].target])
    out = pollution_sweep(model, params, rankings, SPEC, ks=(5,), target_items=TARGETS, target_rankings=rows)
    for p in rankings:
        assert out.targets[p]["hit@5"].shape == (3,)
    # the targeted attack raises the targets' mean log-probability, the objective it climbs
    cache = model.apply(params, method="embeddings")
    r = rankings["full"]
    m = np.asarray(r.mask).reshape(-1)
    w = jax.jit(lambda t: polluted_windows(model, params, SPEC, r, t, jax.random.key(0)))(jnp.asarray(TARGETS))
    w = jnp.asarray(np.asarray(w).reshape(3, -1, MAX_LEN)[:, m])
    truth = jnp.zeros(w.shape[1], jnp.int32)

    @jax.jit
    @jax.vmap
    def mean_logp(x):
        return jnp.mean(objective(model, params, cache, model.apply(params, x, method="embed"), x, truth, TARGETS))

    lp = np.asarray(mean_logp(w))
    assert lp[0] < lp[1] < lp[2]


def test_bad_input_is_one_keyed_line(victim, split):
    model, params, rankings = victim
    with pytest.raises(JaxrecError, match="max_len"):
        pollution_sweep(model, params, rankings, Pollution(max_k=MAX_LEN + 1))
    with pytest.raises(JaxrecError, match="targets"):
        pollution_sweep(model, params, rankings, Pollution(max_k=1), target_items=[model.n_items])
    mf, _ = build_model(ModelConfig(name="mf", dim=4), split.train)
    with pytest.raises(JaxrecError, match="not a sequence model"):
        pollution_sweep(mf, params, rankings, Pollution(max_k=1))


def _study_cfg(split, **pollution):
    """The gradient attack is :data:`SPEC`, on rankings and targets of the tests' shapes."""
    from jaxrec.config import Config, EvalConfig, RobustnessConfig, TrainConfig

    targets = tuple(str(i) for i in split.train.item_ids[TARGETS])
    settings = {
        "pollution": ("gradient", "random"),
        "pollution_k": SPEC.max_k,
        "pollution_candidates": SPEC.candidates,
        "pollution_targets": targets,
        **pollution,
    }
    return Config(
        data=DataConfig(split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0),
        train=TrainConfig(epochs=1, batch_size=8, loss="ce"),
        eval=EvalConfig(ks=(5,), negatives=5, chunk=CHUNK),
        robustness=RobustnessConfig(
            methods=(),
            eps=(0.5,),
            plot_metric="ndcg@5",
            seeds=2,
            **settings,
        ),
    )


def test_the_robustness_study_reports_pollution_over_k(split, tmp_path):
    import dataclasses

    from jaxrec.experiment.studies import robustness as study

    cfg = dataclasses.replace(_study_cfg(split), output_dir=str(tmp_path))  # results.json goes there
    tmp_path = tmp_path / cfg.name
    tmp_path.mkdir()
    plan = study.check(cfg, split=split)
    result = study.run(cfg, plan, progress=False)
    rows = result.extras.pollution_rows
    # 2 seeds x 2 attacks x 2 modes x 2 protocols x 3 k
    assert len(rows) == 48 and {r["k"] for r in rows} == {0, 1, 2}
    assert all(r["delta_ndcg@5"] == 0.0 for r in rows if r["k"] == 0 and r["mode"] == "untargeted")
    assert all(r["target_delta_hit@5"] == 0.0 for r in rows if r["k"] == 0 and r["mode"] == "targeted")
    study.write_report(result, tmp_path)
    assert (tmp_path / "results.json").exists()
    report = (tmp_path / "report.md").read_text()
    assert "untargeted pollution: delta_ndcg@5" in report and "targeted pollution: target_hit@5" in report
    assert (tmp_path / "pollution_ndcg@5_vs_k.png").exists() and (tmp_path / "pollution_target_hit@5_vs_k.png").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"pollution_k": MAX_LEN + 1},
            r"robustness.pollution \(.*\): pollution K=7 must be between 1 and the model's max_len",
        ),
        ({"pollution_targets": ("no-such-item",)}, r"robustness.pollution_targets: .*no-such-item"),
    ],
)
def test_the_study_refuses_bad_pollution_settings_before_training(split, change, match):
    from jaxrec.experiment.studies import robustness as study

    with pytest.raises(JaxrecError, match=match):
        study.check(_study_cfg(split, **change), split=split)


def test_the_study_refuses_pollution_of_an_embedding_model(split):
    import dataclasses

    from jaxrec.experiment.studies import robustness as study

    cfg = _study_cfg(split)
    mf = dataclasses.replace(cfg, model=ModelConfig(name="mf", dim=4))
    with pytest.raises(JaxrecError, match=r"robustness.pollution: .* \(mf\) is not a sequence model"):
        study.check(mf)
