"""model.dtype: bfloat16 computes in bfloat16 while params and Adam moments stay float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec.config import ModelConfig
from jaxrec.experiment import build_model
from jaxrec.train.state import create_state
from jaxrec.train.steps import epoch_batches, make_loss_fn, make_train_step, train_data


def test_bfloat16_compute_float32_params_and_optimizer(tiny_split):
    model, inputs = build_model(ModelConfig(dim=8, dtype="bfloat16"), tiny_split.train)
    state = create_state(model, jax.random.key(0), optax.adam(0.05), inputs)
    data = train_data(tiny_split.train, 16, inputs)
    scores = model.apply(state.params, jnp.array([0, 1]), jnp.array([[0, 1], [2, 3]]), method="score")
    assert scores.dtype == jnp.bfloat16  # compute in bfloat16
    step = jax.jit(make_train_step(make_loss_fn(model)))
    batch = jax.tree.map(lambda x: x[0], epoch_batches(state, data, 16))
    new, metrics = step(state, batch, data)
    assert np.isfinite(float(metrics["loss"]))
    for leaf in jax.tree.leaves(new.params):
        assert leaf.dtype == jnp.float32  # master weights stay float32
    for leaf in jax.tree.leaves(new.opt_state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params))]
    assert all(moved)  # bfloat16 gradients reach the float32 params
