"""NGCF: the layer formula against a numpy reference, gradients across kernels (the symmetric
per-layer VJP inside a non-linear stack), message dropout only in training. The run through the
shared experiment path is tested with LightGCN's (tests/models/test_lightgcn.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dense_normalised_adjacency, small_graph

from jaxrec.config import ModelConfig
from jaxrec.data.graph import PROPAGATIONS
from jaxrec.experiment import build_model
from jaxrec.models import NGCF, embedding_tables
from jaxrec.train.state import init_params


def _build(kernel="dense", layers=2, dropout=0.1, isolated=True):
    train = small_graph(isolated=isolated)
    model, inputs = build_model(
        ModelConfig(name="ngcf", dim=8, layers=layers, dropout=dropout, propagation=kernel), train
    )
    params = init_params(model, jax.random.key(0), inputs)
    return train, model, inputs, params


def numpy_ngcf(train, params, layers):
    """The paper's eq. 7 with L = D^-1/2 A D^-1/2 over the full (U+I) adjacency, float64."""
    lap = dense_normalised_adjacency(train)
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params["params"])
    e = np.concatenate([p["embeddings"]["user"], p["embeddings"]["item"]])
    outs = [e]
    for k in range(layers):
        side = lap @ e
        h = (e + side) @ p[f"gc_{k}"]["kernel"] + p[f"gc_{k}"]["bias"]
        h += (e * side) @ p[f"bi_{k}"]["kernel"] + p[f"bi_{k}"]["bias"]
        e = np.where(h > 0, h, 0.2 * h)
        outs.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
    final = np.concatenate(outs, axis=1)
    return final[: train.n_users], final[train.n_users :]


def test_embeddings_match_the_numpy_reference_and_isolated_nodes_stay_finite():
    train, model, inputs, params = _build("bcsr_vjp", layers=2)
    emb = model.apply({**params, **inputs}, method="embeddings")  # train=False: no dropout
    assert emb["user"].shape == (train.n_users, 8 * 3) and emb["item"].shape == (train.n_items, 24)
    ref_u, ref_i = numpy_ngcf(train, params, 2)
    np.testing.assert_allclose(emb["user"], ref_u, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb["item"], ref_i, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(emb["user"])) and np.all(np.isfinite(emb["item"]))


def _grads(kernel):
    train, model, inputs, params = _build(kernel, layers=2, isolated=False)
    users, items = jnp.array([0, 3, 5]), jnp.array([[1, 2], [0, 4], [7, 8]])

    def loss(p):
        return jnp.sum(model.apply({**p, **inputs}, users, items, method="score") ** 2)

    return jax.jit(jax.grad(loss))(params)


@pytest.mark.parametrize("kernel", ["segment_sum_vjp", "bcsr_vjp", "bcoo"])
def test_gradients_match_plain_autodiff_through_the_dense_kernel(kernel):
    got, ref = _grads(kernel), _grads("dense")
    assert np.count_nonzero(np.abs(embedding_tables(got)["user"]).sum(1)) > 3  # spread by the graph
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_message_dropout_only_in_training_and_seeded():
    train, model, inputs, params = _build("dense", layers=2, dropout=0.5)
    v = {**params, **inputs}
    plain = model.apply(v, method="embeddings")
    drop = lambda k: model.apply(v, True, method="embeddings", rngs={"dropout": jax.random.key(k)})  # noqa: E731
    a, b, c = drop(0), drop(0), drop(1)
    np.testing.assert_array_equal(a["user"], b["user"])
    assert not np.allclose(a["user"], c["user"])
    # layer 0 is never dropped; later layers are
    np.testing.assert_allclose(a["user"][:, :8], plain["user"][:, :8])
    assert not np.allclose(a["user"][:, 8:], plain["user"][:, 8:])


def test_ngcf_is_lightgcn_with_another_hook_and_builds_with_every_kernel():
    assert issubclass(NGCF, type(build_model(ModelConfig(name="lightgcn"), small_graph())[0]))
    for kernel in PROPAGATIONS:
        build_model(ModelConfig(name="ngcf", dim=4, layers=1, propagation=kernel), small_graph())
