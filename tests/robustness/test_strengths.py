"""Metrics under parameter perturbation: many strengths and seeds in one vmapped program."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.evaluate import evaluate, split_ranking
from jaxrec.experiment import train_members
from jaxrec.models.base import embedding_tables
from jaxrec.robustness import PGD, perturb, perturbed_metrics, strengths

EPS = [0.0, 0.3, 1.0]


@pytest.fixture(scope="module")
def victims(tiny_split):
    """A trained MF and LightGCN: ``(model, params, inputs, train data, test ranking)`` each."""
    out = {}
    for name in ("mf", "lightgcn"):
        cfg = Config(
            model=ModelConfig(name=name, dim=8, layers=1),
            eval=EvalConfig(ks=(5,)),
            train=TrainConfig(epochs=8, batch_size=16, lr=0.05),
        )
        run = train_members([cfg], tiny_split, progress=False)
        t = run.training
        out[name] = (t.model, run.fit.member(0).best_params, t.inputs, t.data, split_ranking(tiny_split, "test"))
    return out


@pytest.fixture(scope="module")
def victim(victims):
    return victims["mf"]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _delta_and_loss(model, method, pgd, params, inputs, data, e, key):
    """One (strength, seed) by hand, with the same keys as the vmapped program: the delta and the
    adversary's loss at the perturbed tables (one compiled program per model and method)."""
    k_neg, k_dir = jax.random.split(jax.random.fold_in(key, 0))
    loss = strengths.adversary_loss(model, params, inputs, data, k_neg)
    tables = embedding_tables(params)
    if method == "pgd":
        delta = perturb.pgd(loss, tables, e, pgd.steps, pgd.step_size, False, pgd.random_start, k_dir)
    else:
        delta = perturb.perturbation(method, tables, jax.grad(loss)(tables), e, False, k_dir)
    return delta, loss({k: t + delta[k] for k, t in tables.items()})


def _alone(model, params, inputs, data, ranking, method, e, key, pgd=PGD()):
    """One (strength, seed) by hand: the delta applied and evaluated."""
    delta, loss = _delta_and_loss(model, method, pgd, params, inputs, data, jnp.float32(e), key)
    return evaluate(model, {**perturb.apply(params, delta), **inputs}, ranking, (5,)), float(loss)


@pytest.mark.parametrize("name, method", [("mf", "fgm"), ("mf", "random"), ("lightgcn", "fgm"), ("lightgcn", "pgd")])
def test_the_vmapped_program_equals_a_loop_and_zero_is_clean(victims, name, method):
    model, params, inputs, data, ranking = victims[name]
    key = jax.random.key(3)
    pgd = PGD(steps=3)
    out = perturbed_metrics(model, params, inputs, data, ranking, eps=EPS, method=method, ks=(5,), key=key, pgd=pgd)
    clean = evaluate(model, {**params, **inputs}, ranking, (5,))
    for name, v in clean.items():  # eps = 0 reproduces the clean metrics exactly
        assert out.rows[0][name] == pytest.approx(v, abs=1e-7) and out.clean[name] == pytest.approx(v, abs=1e-7)
    assert out.rows[0]["jaccard@5"] == pytest.approx(1.0) and out.rows[0]["score_shift@5"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert out.rows[0]["adv_loss"] == pytest.approx(out.clean["adv_loss"], rel=1e-6)
    for row, e in zip(out.rows, EPS):
        alone, loss = _alone(model, params, inputs, data, ranking, method, e, key, pgd)
        for name, v in alone.items():
            np.testing.assert_allclose(row[name], v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(row["adv_loss"], loss, rtol=1e-5)
    assert out.rows[-1]["jaccard@5"] < 1.0
    assert out.user_ndcg.shape == (1, len(EPS), out.users.size) and out.users.size == ranking.n_users
    np.testing.assert_allclose(out.user_ndcg[0, 0], out.clean_ndcg, atol=1e-6)
    np.testing.assert_allclose(out.user_ndcg[0].mean(-1), [r["ndcg@5"] for r in out.rows], rtol=1e-5)


def test_pgd_raises_the_loss_at_least_as_much_as_fgm_and_fgm_more_than_noise(victim):
    model, params, inputs, data, ranking = victim
    eps = [0.25, 0.5, 1.0]
    loss = {
        m: [
            r["adv_loss"]
            for r in perturbed_metrics(model, params, inputs, data, ranking, eps=eps, method=m, ks=(5,), seeds=2).rows
        ]
        for m in ("random", "gaussian", "fgm", "pgd")
    }
    for i in range(len(eps) * 2):
        assert loss["fgm"][i] > max(loss["random"][i], loss["gaussian"][i])
        assert loss["pgd"][i] >= loss["fgm"][i] - 1e-6


def test_one_trace_for_every_strength_list_and_seed_count_of_a_shape(victim):
    model, params, inputs, data, ranking = victim
    before = strengths.TRACES["fgsm"]
    a = perturbed_metrics(model, params, inputs, data, ranking, eps=[0.1, 0.2], method="fgsm", ks=(5,), seeds=2)
    b = perturbed_metrics(
        model, params, inputs, data, ranking, eps=[0.5, 1.5], method="fgsm", ks=(5,), seeds=2, key=jax.random.key(9)
    )
    assert strengths.TRACES["fgsm"] - before == 1
    assert [r["eps"] for r in b.rows] == [0.5, 1.5, 0.5, 1.5] and [r["seed"] for r in a.rows] == [0, 0, 1, 1]
    assert a.rows[0]["adv_loss"] != a.rows[2]["adv_loss"]  # seeds draw their own negatives


def test_pgd_stays_inside_the_ball_and_one_full_step_is_fgm():
    key = jax.random.key(0)
    tables = {"user": jax.random.normal(key, (50, 6)), "item": jax.random.normal(jax.random.key(1), (40, 6))}
    w = jax.random.normal(jax.random.key(2), (6,))
    loss = lambda t: jnp.sum(jnp.tanh(t["user"] @ w)) + jnp.sum(jnp.sin(t["item"]) ** 2)  # noqa: E731
    for relative, start in ((False, False), (True, True)):
        delta = perturb.pgd(loss, tables, 0.4, 7, 0.5, relative, start, jax.random.key(3))
        radius = perturb.scale(tables, 0.4, relative)
        for k, d in delta.items():
            norms = np.linalg.norm(np.asarray(d), axis=-1)
            assert norms.max() <= float(radius[k]) * (1 + 1e-5) and norms.max() > 0.9 * float(radius[k])
        moved = {k: t + delta[k] for k, t in tables.items()}
        assert loss(moved) > loss(tables)
    one = perturb.pgd(loss, tables, 0.4, 1, 1.0)
    fgm = perturb.fgm(tables, jax.grad(loss)(tables), 0.4)
    for k in tables:
        # two programs (PGD's jitted loop, the eager gradient) may compile tanh / sin to different
        # float32 approximations (the suite's XLA flags, tests/conftest.py): 1e-4 relative
        np.testing.assert_allclose(np.asarray(one[k]), np.asarray(fgm[k]), rtol=1e-4, atol=1e-6)


def test_gaussian_noise_has_the_strength_as_its_expected_row_norm():
    tables = {"user": jnp.zeros((4000, 64))}
    d = perturb.gaussian(jax.random.key(0), tables, 0.5)["user"]
    norms = np.linalg.norm(np.asarray(d), axis=-1)
    assert abs(np.sqrt(np.mean(norms**2)) - 0.5) < 0.01 and norms.std() > 0.01  # not a fixed norm


def test_bad_perturbation_arguments_fail_before_any_work(victim):
    model, params, inputs, data, ranking = victim
    for kwargs, match in (
        ({"method": "bogus"}, "unknown perturbation"),
        ({"seeds": 0}, "at least one seed"),
        ({"eps": [-1.0]}, ">= 0"),
        ({"method": "pgd", "pgd": PGD(steps=0)}, "one step"),
    ):
        args = {"eps": [0.5], **kwargs}
        with pytest.raises(Exception, match=match):
            perturbed_metrics(model, params, inputs, data, ranking, **args)


def test_strengths_in_groups_equal_all_at_once(victim):
    """``batch`` strengths vmapped at a time (a lax.map over the groups, one program) gives the
    rows of the full vmap; auto_batch keeps chunks wide."""
    model, params, inputs, data, ranking = victim
    eps = [0.1, 0.4, 0.7, 1.0, 1.5]
    full = perturbed_metrics(model, params, inputs, data, ranking, eps=eps, method="fgsm", ks=(5,), seeds=2)
    groups = perturbed_metrics(model, params, inputs, data, ranking, eps=eps, method="fgsm", ks=(5,), seeds=2, batch=2)
    for a, b in zip(full.rows, groups.rows):
        assert a["method"] == b["method"] and a["eps"] == b["eps"] and a["seed"] == b["seed"]
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    np.testing.assert_allclose(groups.user_ndcg, full.user_ndcg, atol=1e-6)
    with pytest.raises(Exception, match="batch must be between 1"):
        perturbed_metrics(model, params, inputs, data, ranking, eps=eps, ks=(5,), batch=6)
    assert strengths.auto_batch(model, 1682, 32) == 32  # ml-100k: a 4096-user chunk, all at once
    assert strengths.auto_batch(model, 40981, 32) == 3  # Gowalla: 409 users a chunk alone
