"""APR (He et al., SIGIR 2018): the perturbation module and the adversarial loss wrapper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial.apr import make_apr_loss
from jaxrec.config import AdvConfig, Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.experiment import build_model, train_members
from jaxrec.models.base import embedding_tables
from jaxrec.robustness import perturb
from jaxrec.train.losses import get_loss
from jaxrec.train.state import adam, create_state
from jaxrec.train.steps import make_loss_fn

MODELS = {
    "mf": (ModelConfig(name="mf", dim=8), "bpr"),
    "neumf": (ModelConfig(name="neumf", dim=8, mlp_layers=(16, 8), dropout=0.0), "bce"),
    "lightgcn": (ModelConfig(name="lightgcn", dim=8, layers=2), "bpr"),
}


def _batch(split, n_neg=1, seed=0):
    rng = np.random.default_rng(seed)
    users, items = split.train.users[:48], split.train.items[:48]
    neg = rng.integers(0, split.n_items, (users.size, n_neg))
    return jnp.asarray(users), jnp.asarray(np.concatenate([items[:, None], neg], 1)), jnp.ones(users.size)


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_setup(request, tiny_split):
    cfg, loss = MODELS[request.param]
    model, inputs = build_model(cfg, tiny_split.train)
    params = create_state(model, jax.random.key(1), adam(), inputs).params
    # scale the tables up so that the perturbation is small next to them (as after training)
    params = perturb.apply(params, jax.tree.map(lambda t: 4 * t, embedding_tables(params)))
    return model, inputs, params, loss


def _hp(eps=0.5, reg=1.0, l2=0.0, start=0):
    return {
        "l2": jnp.float32(l2),
        "eps": jnp.float32(eps),
        "reg": jnp.float32(reg),
        "start_step": jnp.float32(start),
        "step": jnp.int32(0),
    }


def test_the_adversarial_direction_raises_the_loss_more_than_a_random_one(model_setup, tiny_split):
    model, inputs, params, loss = model_setup
    users, items, mask = _batch(tiny_split)
    rank = lambda p: make_loss_fn(model, loss)(p, inputs, users, items, mask, jax.random.key(0), {})[0]  # noqa: E731
    tables = embedding_tables(params)
    grads = perturb.table_gradients(rank, params)
    base = float(rank(params))
    for eps in (0.05, 0.2):
        adv = perturb.fgm(tables, grads, eps)
        rnd = perturb.random(jax.random.key(3), tables, eps)
        for name in tables:  # FGM: per-row norm eps on the rows with a gradient; random: every row
            n_adv = np.linalg.norm(np.asarray(adv[name]), axis=-1)
            has_grad = np.linalg.norm(np.asarray(grads[name]), axis=-1) > 0
            np.testing.assert_allclose(n_adv[has_grad], eps, rtol=1e-5)
            assert np.all(n_adv[~has_grad] == 0)
            np.testing.assert_allclose(np.linalg.norm(np.asarray(rnd[name]), axis=-1), eps, rtol=1e-5)
        up_adv = float(rank(perturb.apply(params, adv))) - base
        up_rnd = float(rank(perturb.apply(params, rnd))) - base
        assert up_adv > 0 and up_adv > 3 * abs(up_rnd), (eps, up_adv, up_rnd)


def test_zero_strength_or_weight_is_the_plain_step(model_setup, tiny_split):
    model, inputs, params, loss = model_setup
    users, items, mask = _batch(tiny_split)
    key = jax.random.key(0)
    plain = jax.grad(lambda p: make_loss_fn(model, loss)(p, inputs, users, items, mask, key, {"l2": 0.0})[0])(params)
    apr = make_apr_loss(model, loss)
    grad = jax.jit(jax.grad(lambda p, hp: apr(p, inputs, users, items, mask, key, hp)[0]))  # one program
    for hp in (_hp(eps=0.0, reg=1.0), _hp(eps=0.5, reg=0.0), _hp(eps=0.5, reg=1.0, start=5)):
        g = grad(params, hp)
        scale = 2.0 if (float(hp["eps"]) == 0 and float(hp["reg"]) == 1 and float(hp["start_step"]) == 0) else 1.0
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(plain)):
            np.testing.assert_allclose(np.asarray(a), scale * np.asarray(b), rtol=1e-5, atol=1e-7)


def test_the_perturbation_is_not_differentiated_and_the_terms_are_the_right_way_round(model_setup, tiny_split):
    """APR's gradient is ∇[L(Θ) + λ L(Θ + Δ)] with Δ held constant, the L2 term on the clean side
    only. Both a version differentiating through Δ and one with the terms swapped differ."""
    model, inputs, params, loss = model_setup
    users, items, mask = _batch(tiny_split)
    key, lam, l2, eps = jax.random.key(0), 0.3, 0.05, 0.2
    hp = _hp(eps=eps, reg=lam, l2=l2)
    clean_fn, rank_fn = make_loss_fn(model, loss, with_l2=True), make_loss_fn(model, loss)
    clean = lambda p: clean_fn(p, inputs, users, items, mask, key, {"l2": l2})[0]  # noqa: E731
    rank = lambda p: rank_fn(p, inputs, users, items, mask, key, {})[0]  # noqa: E731

    def delta_of(p):
        return perturb.fgm(embedding_tables(p), perturb.table_gradients(rank, p), eps)

    delta = delta_of(params)
    apr = make_apr_loss(model, loss, with_l2=True)
    (total, aux), g = jax.value_and_grad(lambda p: apr(p, inputs, users, items, mask, key, hp), has_aux=True)(params)
    # the values: clean term at Θ (with L2), adversarial term at Θ + Δ (without)
    np.testing.assert_allclose(float(aux["rank_loss"]), float(rank(params)), rtol=1e-6)
    np.testing.assert_allclose(float(aux["adv_loss"]), float(rank(perturb.apply(params, delta))), rtol=1e-6)
    np.testing.assert_allclose(float(total), float(clean(params)) + lam * float(aux["adv_loss"]), rtol=1e-6)
    expected = jax.grad(lambda p: clean(p) + lam * rank(perturb.apply(p, delta)))(params)
    through = jax.grad(lambda p: clean(p) + lam * rank(perturb.apply(p, delta_of(p))))(params)
    swapped = jax.grad(lambda p: clean(perturb.apply(p, delta)) + lam * rank(p))(params)

    def dist(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    assert dist(g, expected) < 1e-6
    assert dist(through, expected) > 100 * max(dist(g, expected), 1e-9)
    assert dist(swapped, expected) > 100 * max(dist(g, expected), 1e-9)


def test_at_the_final_representations_the_gradient_is_aprs_with_delta_on_them(model_setup, tiny_split):
    """``perturb_at: final``: ∇[L(E(Θ)) + λ L(E(Θ) + Δ)] with ``E`` the model's final
    representations (LightGCN: propagated) and ``Δ`` the FGM of ∂L/∂E held constant, computed here
    by hand (numpy). For MF and NeuMF ``E`` is the tables, so it is APR's own gradient; for LightGCN
    it differs from the tables' APR."""
    model, inputs, params, loss = model_setup
    users, items, mask = _batch(tiny_split)
    key, lam, l2, eps = jax.random.key(0), 0.3, 0.05, 0.2
    hp = _hp(eps=eps, reg=lam, l2=l2)
    clean_fn = make_loss_fn(model, loss, with_l2=True)
    rngs = {"dropout": key}

    def final(p):
        return model.apply({**p, **inputs}, train=True, method="embeddings", rngs=rngs)

    def rank_at(p, cache):
        s = model.apply({**p, **inputs}, users, items, cache=cache, train=True, method="score", rngs=rngs)
        return jnp.sum(get_loss(loss)(s[:, 0], s[:, 1:]) * mask) / jnp.sum(mask)

    g = jax.grad(lambda c: rank_at(params, c))(final(params))
    delta = {}
    for k, x in g.items():
        x = np.asarray(x, np.float64)
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        delta[k] = jnp.asarray(np.where(n > 0, eps * x / np.where(n > 0, n, 1.0), 0.0), jnp.float32)
    clean = lambda p: clean_fn(p, inputs, users, items, mask, key, {"l2": l2})[0]  # noqa: E731

    def expected_loss(p):
        c = final(p)
        return clean(p) + lam * rank_at(p, {k: v + delta[k] for k, v in c.items()})

    expected = jax.grad(expected_loss)(params)
    at_final = jax.grad(
        lambda p: make_apr_loss(model, loss, with_l2=True, at="final")(p, inputs, users, items, mask, key, hp)[0]
    )(params)
    at_tables = jax.grad(lambda p: make_apr_loss(model, loss, with_l2=True)(p, inputs, users, items, mask, key, hp)[0])(
        params
    )

    def dist(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    assert dist(at_final, expected) < 1e-6
    if getattr(model, "graph_input", False):
        assert dist(at_tables, expected) > 100 * max(dist(at_final, expected), 1e-9)
    else:
        assert dist(at_tables, at_final) < 1e-6


def _cfg(model="mf", eps=0.5, **adv) -> Config:
    mcfg, loss = MODELS[model]
    return Config(
        model=mcfg,
        eval=EvalConfig(ks=(5,)),
        train=TrainConfig(epochs=3, batch_size=16, lr=0.01, loss=loss),
        adv=AdvConfig(method="apr", eps=eps, relative=True, **adv),
    )


def test_several_strengths_in_one_program_equal_separate_runs(tiny_split):
    cfgs = [_cfg(eps=e, start_epoch=1) for e in (0.1, 1.0)]
    together = train_members(cfgs, tiny_split, progress=False)
    for m, c in enumerate(cfgs):
        alone = train_members([c], tiny_split, progress=False)
        a, b = together.fit.member(m), alone.fit.member(0)
        np.testing.assert_allclose([h["loss"] for h in a.history], [h["loss"] for h in b.history], rtol=1e-5)
        assert a.history[0]["adv_loss"] == 0.0 and a.history[1]["adv_loss"] > 0  # off in epoch 1
        for x, y in zip(jax.tree.leaves(a.best_params), jax.tree.leaves(b.best_params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert together.fit.member(1).history[-1]["adv_loss"] > together.fit.member(0).history[-1]["adv_loss"]


def test_warm_start_from_an_earlier_run_and_config_errors(tmp_path, tiny_split):
    import dataclasses

    from jaxrec.config import CheckpointConfig

    pre = dataclasses.replace(
        _cfg(),
        adv=AdvConfig(),
        output_dir=str(tmp_path),
        name="pre",
        checkpoint=CheckpointConfig(every=3, dir=str(tmp_path / "pre")),
    )
    first = train_members([pre], tiny_split, progress=False)
    warm = dataclasses.replace(
        _cfg(), train=dataclasses.replace(_cfg().train, epochs=0, init_from=str(tmp_path / "pre"))
    )
    started = train_members(
        [warm, dataclasses.replace(warm, adv=dataclasses.replace(warm.adv, eps=0.2))], tiny_split, progress=False
    )
    for m in range(2):  # both members start from the pretrained member's params
        for x, y in zip(
            jax.tree.leaves(started.fit.member(m).state.params), jax.tree.leaves(first.fit.member(0).state.params)
        ):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for bad, message in [  # refused when built (a section checks its values), before any training
        ({"method": "amf"}, r"adv.method must be one of \['none', 'apr', 'vat', 'mix', 'dirichlet'\], got 'amf'"),
        ({"method": "apr", "eps": -1.0}, r"adv.eps must be >= 0, got -1.0"),
        ({"method": "apr", "perturb": "pgd"}, r"adv.perturb must be one of \['fgm', 'fgsm'\], got 'pgd'"),
        ({"method": "apr", "perturb_at": "output"}, r"adv.perturb_at must be one of \['tables', 'final'\]"),
    ]:
        with pytest.raises(JaxrecError, match=message):
            train_members([dataclasses.replace(_cfg(), adv=AdvConfig(**bad))], tiny_split, progress=False)
    with pytest.raises(JaxrecError, match="train.init_from: no checkpoint directory"):
        train_members(
            [dataclasses.replace(warm, train=dataclasses.replace(warm.train, init_from=str(tmp_path / "x")))],
            tiny_split,
            progress=False,
        )
