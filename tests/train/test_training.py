"""The scan epoch, the jitted step, determinism, padding, early stopping and NaN handling."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrec.errors import JaxrecError
from jaxrec.evaluate import evaluate_params, split_ranking
from jaxrec.models import MF, embedding_tables
from jaxrec.train.engine import make_engine
from jaxrec.train.loop import NonFiniteLossError, fit, jit_epoch
from jaxrec.train.state import create_state, stack
from jaxrec.train.steps import epoch_batches, make_epoch, make_loss_fn, make_train_step, train_data

B = 32


@pytest.fixture(scope="module")
def setup(tiny_split):
    model = MF(tiny_split.n_users, tiny_split.n_items, dim=8)
    data = train_data(tiny_split.train, B)
    step = make_train_step(make_loss_fn(model, "bpr"))
    return model, data, step


def fresh_state(model, seed=0, lr=0.05):
    return create_state(model, jax.random.key(seed), optax.adam(lr))


def test_train_data_pads_to_whole_batches(tiny_split, setup):
    _, data, _ = setup
    n = len(tiny_split.train)
    assert data.n_pairs % B == 0 and data.n_pairs >= n
    assert float(data.mask.sum()) == n
    batches = epoch_batches(fresh_state(setup[0]), data, B)
    assert batches.users.shape == (data.n_pairs // B, B)
    assert batches.items.shape == (data.n_pairs // B, B, 2)
    # every real pair appears exactly once per epoch
    real = np.asarray(batches.mask).ravel() > 0
    pairs = set(
        zip(np.asarray(batches.users).ravel()[real].tolist(), np.asarray(batches.items)[..., 0].ravel()[real].tolist())
    )
    assert pairs == set(zip(tiny_split.train.users.tolist(), tiny_split.train.items.tolist()))


def test_epoch_lowers_the_loss_without_recompiling(setup):
    model, data, step = setup
    epoch = jit_epoch(make_epoch(step, B), max_traces=1)  # a second trace would raise
    state = fresh_state(model)
    losses = []
    for _ in range(6):
        state, m = epoch(state, data)
        losses.append(float(jnp.mean(m["loss"])))
    assert losses[-1] < losses[0] * 0.8
    assert int(state.step) == 6 * data.n_pairs // B


def test_single_jitted_step_with_donated_state(setup):
    model, data, step = setup
    jstep = jax.jit(chex.assert_max_traces(step, n=1), donate_argnums=0)
    state = fresh_state(model)
    batches = epoch_batches(state, data, B)
    before = np.asarray(embedding_tables(state.params)["user"]).copy()
    for i in range(3):
        state, m = jstep(state, jax.tree.map(lambda a, i=i: a[i], batches), data)
    assert int(state.step) == 3 and np.isfinite(float(m["loss"]))
    assert not np.allclose(before, np.asarray(embedding_tables(state.params)["user"]))


def test_same_seed_same_run_different_seed_different_run(setup):
    model, data, step = setup
    epoch = jax.jit(make_epoch(step, B))
    runs = []
    for seed in (0, 0, 1):
        state = fresh_state(model, seed)
        for _ in range(2):
            state, _ = epoch(state, data)
        runs.append(np.asarray(embedding_tables(state.params)["item"]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_padding_does_not_change_the_gradient(tiny_split):
    """Two batch sizes with different padding give the same full-batch gradient."""
    model = MF(tiny_split.n_users, tiny_split.n_items, dim=4)
    params = fresh_state(model).params
    loss_fn = make_loss_fn(model, "bpr")
    n = len(tiny_split.train)
    u, i = tiny_split.train.users, tiny_split.train.items
    items = jnp.stack([jnp.asarray(i), jnp.asarray((i + 1) % tiny_split.n_items)], 1)
    grad = jax.jit(jax.grad(loss_fn, has_aux=True))
    g1, _ = grad(params, {}, jnp.asarray(u), items, jnp.ones(n), jax.random.key(0), {})
    pad = lambda a: jnp.concatenate([a, jnp.zeros((5,) + a.shape[1:], a.dtype)])  # noqa: E731
    g2, _ = grad(params, {}, pad(jnp.asarray(u)), pad(items), pad(jnp.ones(n)), jax.random.key(0), {})
    chex.assert_trees_all_close(g1, g2, rtol=1e-5, atol=1e-7)


def test_fit_keeps_the_best_validation_params_and_stops_early(tiny_split, setup):
    model, data, step = setup
    valid = split_ranking(tiny_split, "valid")
    validate = lambda p, d, v: evaluate_params(model, p, v, (5,))  # noqa: E731
    engine = make_engine(make_epoch(step, B), 1, validate=validate, monitor="recall@5", patience=3)
    result = fit(engine, stack([fresh_state(model, lr=0.5)]), data, epochs=30, valid=valid, progress=False).member(0)
    scores = [h["valid/recall@5"] for h in result.history]
    assert len(result.history) < 30  # stopped early
    assert result.stopped and not result.failed
    assert result.history[result.best_epoch - 1]["valid/recall@5"] == max(scores)
    assert result.best_epoch == len(result.history) - 3
    best = evaluate_params(model, result.best_params, valid, (5,))["recall@5"]
    assert float(best) == pytest.approx(max(scores), abs=1e-6)  # the kept params are that epoch's


def test_nan_loss_stops_with_a_clear_message(setup):
    model, data, step = setup
    state = fresh_state(model)
    state = state.replace(params=jax.tree.map(lambda p: p * jnp.nan, state.params))
    with pytest.raises(NonFiniteLossError, match="epoch 1: the training loss is nan"):
        fit(make_engine(make_epoch(step, B), 1), stack([state]), data, epochs=2, progress=False)


def test_batch_size_mismatch_is_a_clear_error_before_tracing(setup):
    model, data, step = setup  # data padded for B = 32
    with pytest.raises(JaxrecError, match="batch size 48 does not match the training data"):
        jax.jit(make_epoch(step, 48))(fresh_state(model), data)


def test_bce_and_l2_losses_train(setup, tiny_split):
    model, data, _ = setup
    step = make_train_step(make_loss_fn(model, "bce", with_l2=True))
    epoch = jax.jit(make_epoch(step, B, n_negatives=2, negative_sampling="popularity"))
    state = fresh_state(model).replace(hparams={"l2": jnp.float32(1e-3)})
    first = None
    for _ in range(5):
        state, m = epoch(state, data)
        first = first if first is not None else float(m["loss"].mean())
    assert float(m["loss"].mean()) < first
    assert float(m["loss"].mean()) > float(m["rank_loss"].mean())  # the L2 term is added
