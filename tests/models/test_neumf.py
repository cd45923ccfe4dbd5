"""NeuMF: shapes and tables, the exact rewrites (split first layer, score_all == score),
dropout only in training, learning on a tiny data set, and the shared experiment path."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_interactions

from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig, load_config
from jaxrec.data import random_ratio
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import default_chunk, model_chunk
from jaxrec.experiment import build_model, run
from jaxrec.models import embedding_tables
from jaxrec.models.neumf import NeuMF, counter_keep_mask
from jaxrec.train.state import init_params

CONFIGS = Path(__file__).parent.parent.parent / "configs"

CFG = ModelConfig(name="neumf", dim=8, mlp_layers=(16, 8), dropout=0.5, initializer="normal", init_std=0.1)


@pytest.fixture(scope="module")
def tiny():
    train = random_interactions(n_users=20, n_items=30, per_user=6, seed=3)
    model, inputs = build_model(CFG, train)
    params = jax.jit(lambda key: init_params(model, key, inputs))(jax.random.key(0))
    return train, model, params


def test_tables_shapes_and_scores(tiny):
    train, model, params = tiny
    tables = embedding_tables(params)
    assert {k: v.shape for k, v in tables.items()} == {
        "user_gmf": (20, 8),
        "item_gmf": (30, 8),
        "user_mlp": (20, 8),
        "item_mlp": (30, 8),
    }
    users = jnp.array([0, 1, 2])
    score = jax.jit(lambda p, u, i: model.apply(p, u, i, method="score"))
    assert score(params, users, jnp.array([3, 4, 5])).shape == (3,)
    assert score(params, users, jnp.array([[3, 4], [5, 6], [7, 8]])).shape == (3, 2)
    full = jax.jit(lambda p, u: model.apply(p, u, method="score_all"))(params, users)
    assert full.shape == (3, 30)
    # score_all (split first layer, GMF as a matmul) equals scoring every pair directly
    every = score(params, users, jnp.tile(jnp.arange(30), (3, 1)))
    np.testing.assert_allclose(full, every, rtol=1e-5, atol=1e-6)


def test_matches_the_paper_formula(tiny):
    """h^T [p_u * q_i ; MLP([p'_u ; q'_i])] + b with the first layer on the concatenation."""
    _, model, params = tiny
    p = params["params"]
    t = p["embeddings"]
    u, i = 4, 7
    x = np.concatenate([t["user_mlp"][u], t["item_mlp"][i]])
    w0 = np.concatenate([p["mlp_0_user"]["kernel"], p["mlp_0_item"]["kernel"]])
    h = np.maximum(x @ w0 + p["mlp_0_user"]["bias"], 0)
    h = np.maximum(h @ p["mlp_1"]["kernel"] + p["mlp_1"]["bias"], 0)
    z = np.concatenate([t["user_gmf"][u] * t["item_gmf"][i], h])
    w = np.concatenate([p["predict_gmf"][:, 0], p["predict_mlp"][:, 0]])
    expected = z @ w + p["predict_bias"][0]
    got = model.apply(params, jnp.array([u]), jnp.array([i]), method="score")
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training(tiny):
    _, model, params = tiny
    users, items = jnp.arange(10), jnp.tile(jnp.arange(30), (10, 1))

    @functools.partial(jax.jit, static_argnums=1)
    def scores(key, train):
        return model.apply(params, users, items, train=train, method="score", rngs={"dropout": key})

    a, b = scores(jax.random.key(1), False), scores(jax.random.key(2), False)
    np.testing.assert_array_equal(a, b)  # deterministic outside training, whatever the key
    c, d = scores(jax.random.key(1), True), scores(jax.random.key(2), True)
    assert not np.allclose(c, a) and not np.allclose(c, d)  # active, and depends on the key
    np.testing.assert_array_equal(c, scores(jax.random.key(1), True))  # reproducible


def test_counter_keep_mask_rate_and_independence():
    mask = np.asarray(counter_keep_mask(jax.random.key(0), (256, 512), 0.1))
    assert abs(mask.mean() - 0.9) < 0.005
    other = np.asarray(counter_keep_mask(jax.random.key(1), (256, 512), 0.1))
    assert abs((mask & other).mean() - 0.81) < 0.006  # two keys give independent-looking masks
    assert abs((mask[:, :-1] & mask[:, 1:]).mean() - 0.81) < 0.006  # neighbours uncorrelated


def test_eval_chunk_accounts_for_the_mlp():
    model = NeuMF(10, 1000, 8, (128, 64))
    assert model.pair_width == 193
    assert model_chunk(model, 1000) == default_chunk(1000 * 193)
    assert model_chunk(object(), 1000) == default_chunk(1000)  # models without the attribute


def test_bad_config_values_name_the_key():
    train = random_interactions()
    with pytest.raises(JaxrecError, match="model.mlp_layers"):
        build_model(ModelConfig(name="neumf", mlp_layers=()), train)
    with pytest.raises(JaxrecError, match="model.dropout"):
        build_model(ModelConfig(name="neumf", dropout=1.0), train)


def two_blocks(n_users=24, n_items=24, per_user=8, seed=0) -> Interactions:
    """Two user groups, each interacting only with its own half of the items (learnable)."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate(
        [rng.choice(half, per_user, replace=False) + half * (u >= n_users // 2) for u in range(n_users)]
    )
    return Interactions(users, items, n_users, n_items, source="two-blocks")


def test_neumf_learns_through_the_experiment_path():
    """``jaxrec.experiment.run`` end to end: BCE falls from chance and the ranking finds the block."""
    split = random_ratio(two_blocks(), (0.75, 0.25), seed=0)
    cfg = Config(
        name="tiny-neumf",
        model=ModelConfig(name="neumf", dim=8, mlp_layers=(16, 8), dropout=0.1, initializer="normal", init_std=0.1),
        train=TrainConfig(epochs=12, batch_size=48, lr=0.02, loss="bce"),
        eval=EvalConfig(ks=(4,)),
    )
    result = run(cfg, split=split, write=False, progress=False)
    losses = [h["loss"] for h in result.fit.history]
    assert abs(losses[0] - np.log(2)) < 0.1  # chance level in the first epoch
    assert losses[-1] < 0.75 * losses[0], losses
    # 18 unmasked candidates per user, 6 of them in the user's block, 2 held out there:
    # a random ranking has recall@4 = 4/18; one that ranks the block first has >= 4/6
    assert result.metrics["recall@4"] > 0.5, result.metrics
    assert set(embedding_tables(result.params)) == {"user_gmf", "item_gmf", "user_mlp", "item_mlp"}


@pytest.mark.integration
def test_ml100k_neumf_few_epochs_far_above_chance(ml100k_split):
    """The ml-100k protocol config, 3 of its 10 epochs: already far above a random ranking."""
    cfg = load_config(CONFIGS / "ml100k-neumf.yaml", ["train.epochs=3", "eval.ks=[20]"])
    assert (cfg.model.mlp_layers, cfg.model.dropout, cfg.train.loss) == ((128, 64), 0.1, "bce")
    result = run(cfg, split=ml100k_split, write=False, progress=False)
    train = ml100k_split.train
    chance = np.mean(20 / (train.n_items - train.user_counts()))  # recall@20 of a random ranking
    assert result.metrics["recall@20"] > max(0.15, 10 * chance), result.metrics
