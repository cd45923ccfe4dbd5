"""VAT (Zhang et al., RecSys 2024): per-user strengths on APR's perturbation."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial.apr import make_apr_loss
from jaxrec.adversarial.vat import row_strengths, user_weights
from jaxrec.config import AdvConfig, Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.experiment import build_model, train_members
from jaxrec.models.base import embedding_tables, replace_embedding_tables
from jaxrec.robustness import perturb
from jaxrec.train.state import adam, create_state
from jaxrec.train.steps import make_example_losses


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_weights_and_row_strengths_follow_the_definition_on_a_hand_example():
    # users 0 (two examples), 1, 2 and a padding row (mask 0) of user 3
    users = jnp.array([0, 0, 1, 2, 3])
    losses = jnp.array([0.5, 0.5, 2.0, 0.25, 9.0])
    mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
    w = np.asarray(user_weights(losses, users, mask, 5, 2.0))
    per_user = {0: 1.0, 1: 2.0, 2: 0.25}  # a user's losses sum
    m = sum(per_user.values()) / 3
    want = [2.0 * _sigmoid(m / per_user[u] - 1.0) for u in range(3)]
    np.testing.assert_allclose(w[:3], want, rtol=1e-6)
    assert w[3] == 0 and w[4] == 0  # padding and absent users
    assert w[2] > w[0] > w[1]  # the best-fitted user is the most vulnerable
    items = jnp.array([[0, 1], [2, 1], [2, 3], [0, 4], [5, 5]])  # [positive, negative] per example
    tables = {"user": jnp.zeros((5, 3)), "item": jnp.zeros((6, 3))}
    s = row_strengths(tables, 0.5, jnp.asarray(w), users, items, mask)
    np.testing.assert_allclose(np.asarray(s["user"]), 0.5 * w, rtol=1e-6)
    wb = [w[0], w[0], w[1], w[2]]
    want_items = [
        (wb[0] + wb[3]) / 2,  # item 0: examples 0 and 3
        (wb[0] + wb[1]) / 2,  # item 1
        (wb[1] + wb[2]) / 2,  # item 2
        wb[2],
        wb[3],
        0.0,  # item 5: only in the padding row
    ]
    np.testing.assert_allclose(np.asarray(s["item"]), 0.5 * np.asarray(want_items), rtol=1e-6)
    # the perturbation module takes them as per-row strengths: FGM row norms equal them
    grads = {"user": jnp.ones((5, 3)), "item": jnp.ones((6, 3))}
    delta = perturb.fgm(tables, grads, s)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(delta["user"]), axis=-1), 0.5 * w, rtol=1e-6)


def test_equal_vulnerabilities_give_apr_at_the_same_strength(tiny_split):
    """Every user row equal and every example on the same two items: equal losses, ``w_u = 1``
    at ``lam = 2``, so VAT's gradient is APR's; at ``lam = 4`` (``w_u = 2``) it is APR's at 2 eps."""
    model, inputs = build_model(ModelConfig(name="mf", dim=8), tiny_split.train)
    params = create_state(model, jax.random.key(1), adam(), inputs).params
    tables = embedding_tables(params)
    tables = {k: (jnp.broadcast_to(4 * t[:1], t.shape) if k.startswith("user") else 4 * t) for k, t in tables.items()}
    params = replace_embedding_tables(params, tables)
    users = jnp.arange(12)
    items = jnp.broadcast_to(jnp.array([3, 7]), (12, 2))
    mask, key = jnp.ones(12), jax.random.key(0)
    per = make_example_losses(model, "bpr")(params, inputs, users, items, key)
    np.testing.assert_allclose(np.asarray(per), float(per[0]), rtol=1e-6)  # equal vulnerabilities

    def grad(vat, eps, lam):
        hp = {"l2": 0.0, "eps": eps, "reg": 1.0, "start_step": 0, "step": 0, "vat_lambda": lam}
        fn = make_apr_loss(model, "bpr", vat=vat)
        return jax.grad(lambda p: fn(p, inputs, users, items, mask, key, hp)[0])(params)

    for lam, scale in ((2.0, 1.0), (4.0, 2.0)):
        vat, apr = grad(True, 0.3, lam), grad(False, 0.3 * scale, lam)
        for a, b in zip(jax.tree.leaves(vat), jax.tree.leaves(apr)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    # unequal vulnerabilities: VAT differs from APR
    users = jnp.asarray(tiny_split.train.users[:12])
    items = jnp.stack([jnp.asarray(tiny_split.train.items[:12]), jnp.arange(12) % tiny_split.n_items], 1)
    params = replace_embedding_tables(params, {k: 4 * t for k, t in embedding_tables(params).items()})
    hp = {"l2": 0.0, "eps": 0.3, "reg": 1.0, "start_step": 0, "step": 0, "vat_lambda": 2.0}
    vals = [make_apr_loss(model, "bpr", vat=v)(params, inputs, users, items, mask, key, hp)[1] for v in (True, False)]
    assert abs(float(vals[0]["adv_loss"]) - float(vals[1]["adv_loss"])) > 1e-6


def _cfg(model: str, lam: float) -> Config:
    mcfg = ModelConfig(name=model, dim=8, layers=2)
    return Config(
        model=mcfg,
        eval=EvalConfig(ks=(5,)),
        train=TrainConfig(epochs=3, batch_size=16, lr=0.01),
        adv=AdvConfig(method="vat", eps=0.3, vat_lambda=lam, start_epoch=1),
    )


@pytest.mark.parametrize("model", ["lightgcn"])
def test_vat_members_equal_separate_runs(model, tiny_split):
    cfgs = [_cfg(model, lam) for lam in (1.0, 3.0)]
    together = train_members(cfgs, tiny_split, progress=False)
    for m, c in enumerate(cfgs):
        a, b = together.fit.member(m), train_members([c], tiny_split, progress=False).fit.member(0)
        assert a.history[0]["adv_loss"] == 0.0 and a.history[1]["adv_loss"] > 0  # off in epoch 1
        np.testing.assert_allclose([h["loss"] for h in a.history], [h["loss"] for h in b.history], rtol=1e-5)
        for x, y in zip(jax.tree.leaves(a.best_params), jax.tree.leaves(b.best_params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    # a larger lam is a stronger adversary
    assert together.fit.member(1).history[-1]["adv_loss"] > together.fit.member(0).history[-1]["adv_loss"]


def test_vat_config_errors(tiny_split):
    with pytest.raises(JaxrecError, match=r"adv.vat_lambda must be >= 0, got -1.0"):  # refused when built
        bad = dataclasses.replace(_cfg("mf", 2.0), adv=AdvConfig(method="vat", vat_lambda=-1.0))
        train_members([bad], tiny_split, progress=False)


def test_vat_at_the_final_representations_weights_their_rows(tiny_split):
    """``perturb_at: final`` on LightGCN: VAT's strengths weigh the rows of the propagated
    embeddings, ``Δ = fgm(∂L/∂E, eps · row_strengths(w))`` with ``w`` from the per-example losses
    at ``E``; the gradient is ``∇[L(E(Θ)) + λ L(E(Θ) + Δ)]`` with ``Δ`` constant."""
    model, inputs = build_model(ModelConfig(name="lightgcn", dim=8, layers=2), tiny_split.train)
    params = create_state(model, jax.random.key(1), adam(), inputs).params
    params = replace_embedding_tables(params, {k: 4 * t for k, t in embedding_tables(params).items()})
    users = jnp.asarray(tiny_split.train.users[:24])
    items = jnp.stack([jnp.asarray(tiny_split.train.items[:24]), jnp.arange(24) % tiny_split.n_items], 1)
    mask, key, eps, lam = jnp.ones(24), jax.random.key(0), 0.2, 0.5
    hp = {"l2": 0.0, "eps": eps, "reg": lam, "start_step": 0, "step": 0, "vat_lambda": 2.0}
    losses = make_example_losses(model, "bpr")

    def final(p):
        return model.apply({**p, **inputs}, train=True, method="embeddings", rngs={"dropout": key})

    def rank(p, cache):
        return jnp.mean(losses(p, inputs, users, items, key, cache))

    cache = final(params)
    g = jax.grad(lambda c: rank(params, c))(cache)
    w = user_weights(losses(params, inputs, users, items, key, cache), users, mask, tiny_split.n_users, 2.0)
    delta = perturb.fgm(cache, g, row_strengths(cache, eps, w, users, items, mask))
    expected = jax.grad(lambda p: rank(p, final(p)) + lam * rank(p, jax.tree.map(jnp.add, final(p), delta)))(params)
    fn = make_apr_loss(model, "bpr", vat=True, at="final")
    got = jax.grad(lambda p: fn(p, inputs, users, items, mask, key, hp)[0])(params)
    apr = jax.grad(lambda p: make_apr_loss(model, "bpr", at="final")(p, inputs, users, items, mask, key, hp)[0])(params)

    def dist(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    assert dist(got, expected) < 1e-6
    assert dist(apr, expected) > 100 * max(dist(got, expected), 1e-9)  # the weights matter
