"""The member engine: many trainings in one program equal the same trainings run separately.

docs/protocols.md "Members": member m of a vmapped run equals the separate run with member m's seed,
hyperparameters and data (rtol 1e-5 on losses and params, 1e-4 on metrics); padding (pairs,
users, graph edges) changes nothing but the reduction order.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_interactions

from jaxrec.config import Config, EvalConfig, ModelConfig, ParallelConfig, TrainConfig
from jaxrec.data import Interactions
from jaxrec.data.graph import bipartite_graph
from jaxrec.experiment import train_members
from jaxrec.models import MF, LightGCN
from jaxrec.models.lightgcn import lightgcn_inputs
from jaxrec.robustness import data_noise
from jaxrec.train.engine import make_engine
from jaxrec.train.loop import fit
from jaxrec.train.state import adam, create_members, member
from jaxrec.train.steps import epoch_batches, make_epoch, make_loss_fn, make_train_step, stack_data, train_data

B = 16
MODELS = {
    "mf": ModelConfig(name="mf", dim=8),
    "neumf": ModelConfig(name="neumf", dim=8, mlp_layers=(16, 8), dropout=0.1, initializer="normal", init_std=0.01),
    "lightgcn": ModelConfig(name="lightgcn", dim=8, layers=2, initializer="xavier_uniform"),
}


def _cfg(model="mf", seed=0, lr=0.01, l2=0.0, epochs=3, **train) -> Config:
    loss = "bce" if model == "neumf" else "bpr"
    return Config(
        model=MODELS[model],
        eval=EvalConfig(ks=(5, 10)),
        train=TrainConfig(epochs=epochs, batch_size=B, lr=lr, l2=l2, seed=seed, loss=loss, **train),
    )


def _assert_member_equals_run(together, m, alone) -> None:
    a, b = together.fit.member(m), alone.fit.member(0)
    assert len(a.history) == len(b.history)
    np.testing.assert_allclose([h["loss"] for h in a.history], [h["loss"] for h in b.history], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(a.best_params), jax.tree.leaves(b.best_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    for k, v in alone.metrics[0].items():
        assert abs(together.metrics[m][k] - v) < 1e-4, (k, together.metrics[m][k], v)
    assert a.best_epoch == b.best_epoch and a.failed == b.failed


@pytest.mark.parametrize("model", sorted(MODELS))
def test_four_seeds_in_one_program_equal_four_runs(tiny_split, model):
    cfgs = [_cfg(model, seed=s) for s in range(4)]
    together = train_members(cfgs, tiny_split, progress=False)
    assert together.fit.n == 4
    for m, c in enumerate(cfgs):
        _assert_member_equals_run(together, m, train_members([c], tiny_split, progress=False))
    # the members really differ (different seeds), and one program trained them all
    losses = [together.fit.member(m).history[-1]["loss"] for m in range(4)]
    assert len(set(losses)) == 4


@pytest.mark.parametrize("loop", ["vmap", "map"])
def test_learning_rates_times_l2_in_one_program_equal_separate_runs(tiny_split, loop):
    """Members batched (vmap) or one after the other inside the one program (map: what a CPU
    gets for members too large for its caches) equal the separate runs."""
    cfgs = [
        dataclasses.replace(_cfg("mf", lr=lr, l2=l2), parallel=ParallelConfig(member_loop=loop))
        for lr in (0.005, 0.05)
        for l2 in (0.0, 0.1)
    ]
    together = train_members(cfgs, tiny_split, progress=False)
    assert together.engine.loop == loop
    for m, c in enumerate(cfgs):
        _assert_member_equals_run(together, m, train_members([c], tiny_split, progress=False))
    rank = [together.fit.member(m).history[-1]["rank_loss"] for m in range(4)]
    total = [together.fit.member(m).history[-1]["loss"] for m in range(4)]
    assert total[0] == rank[0] and total[1] > rank[1]  # l2 = 0 adds nothing, l2 > 0 adds a term


def test_per_member_early_stopping_and_one_diverging_member(tiny_split):
    """Each member stops at its own best epoch (as its separate run does); a member with an
    absurd learning rate fails alone and the others are unaffected."""
    kw = dict(epochs=25, eval_every=1, patience=2, monitor="recall@5")
    cfgs = [_cfg("mf", lr=lr, **kw) for lr in (0.02, 0.2, 1e30)]
    together = train_members(cfgs, tiny_split, progress=False)
    fits = [together.fit.member(m) for m in range(3)]
    assert fits[2].failed and fits[2].failed_epoch >= 1 and not fits[0].failed and not fits[1].failed
    for m in (0, 1):
        alone = train_members([cfgs[m]], tiny_split, progress=False)
        _assert_member_equals_run(together, m, alone)
        assert fits[m].stopped and fits[m].best_epoch == len(fits[m].history) - 2
    assert fits[0].best_epoch != fits[1].best_epoch  # two schedules, one program
    # the engine compiled its epoch and its validation once, for every member, epoch and evaluation
    assert len(together.fit.history) > 2 and together.timing["traces"] == {"epoch": 1, "validate": 1}


def test_one_trace_for_the_whole_sweep(tiny_split):
    """4 members x 4 epochs x 2 validations: the epoch and the validation each traced once."""
    cfgs = [_cfg("mf", seed=s, lr=lr, epochs=4, eval_every=2) for s in (0, 1) for lr in (0.01, 0.02)]
    out = train_members(cfgs, tiny_split, progress=False)
    assert len(out.fit.history) == 4 and sum("valid/recall@20" in h for h in out.fit.history) == 2
    assert out.timing["traces"] == {"epoch": 1, "validate": 1}


# ------------------------------------------------------------------------------------------------
# data variants of one shape


def _epochs(model, state, data, epochs, skip_empty):
    epoch = jax.jit(make_epoch(make_train_step(make_loss_fn(model, "bpr", with_l2=True), skip_empty), B))
    losses = []
    for _ in range(epochs):
        state, m = epoch(state, data)
        w = np.asarray(m["batch"])
        losses.append(np.asarray(m["loss"])[w > 0])
    return state, np.concatenate(losses)


@pytest.mark.parametrize("graph", [False, True], ids=["mf", "lightgcn"])
def test_padded_data_variant_equals_the_unpadded_run(tiny_split, graph):
    train = tiny_split.train
    if graph:
        model = LightGCN(train.n_users, train.n_items, dim=8, layers=2, propagation="bcsr_vjp")
        plain_in = lightgcn_inputs(bipartite_graph(train, "bcsr_vjp"))
        padded_in = lightgcn_inputs(bipartite_graph(train, "bcsr_vjp", capacity=len(train) + 50))
    else:
        model, plain_in, padded_in = MF(train.n_users, train.n_items, dim=8), {}, {}
    state = member(create_members(model, jax.random.key(0)[None], adam(), plain_in, {"l2": [1e-3]}, [0.05]), 0)
    plain = train_data(train, B, plain_in)
    padded = train_data(train, B, padded_in, capacity=plain.n_pairs + 3 * B + 5, search_steps=7)
    assert padded.n_pairs > plain.n_pairs
    s1, l1 = _epochs(model, state, plain, 3, skip_empty=False)
    s2, l2 = _epochs(model, jax.tree.map(jnp.copy, state), padded, 3, skip_empty=True)
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    assert int(s1.step) == int(s2.step)  # padding-only batches are no optimizer step
    for x, y in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_masked_graph_normalises_on_device_like_the_host_graph(tiny_split):
    """A capacity graph with 10 % of its edges masked out propagates exactly as the graph built
    from the remaining interactions (degrees and weights from the mask, on device)."""
    from jaxrec.models.propagation import normalise, propagate

    train = tiny_split.train
    full = jax.tree.map(jnp.asarray, bipartite_graph(train, "bcsr_vjp", capacity=len(train)))
    keep = np.random.default_rng(0).random(len(train)) >= 0.1
    kept = Interactions(train.users[keep], train.items[keep], train.n_users, train.n_items, source="kept")
    ref = jax.tree.map(jnp.asarray, bipartite_graph(kept, "bcsr_vjp"))
    # the capacity graph sorts edges by user like train.csr(); mask the same edges
    indptr, items = train.csr()
    users = np.repeat(np.arange(train.n_users), np.diff(indptr))
    keyset = set(zip(kept.users.tolist(), kept.items.tolist()))
    mask = np.asarray([(u, i) in keyset for u, i in zip(users, items)], np.float32)
    masked = {**full, "u_mask": jnp.asarray(mask)}
    eu = jax.random.normal(jax.random.key(0), (train.n_users, 4))
    ei = jax.random.normal(jax.random.key(1), (train.n_items, 4))
    for a, b in zip(propagate(masked, eu, ei, 2, "bcsr_vjp"), propagate(ref, eu, ei, 2, "bcsr_vjp")):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    w = np.asarray(normalise(masked)["u_w"])
    assert np.all(w[mask == 0] == 0) and np.all(w[mask > 0] > 0)


def test_an_epoch_normalises_a_masked_graph_once_for_all_its_steps(tiny_split):
    """Every step of an epoch reads the masked graph's weights as :func:`normalise` computes them,
    without the mask (so its propagations do not normalise again), and normalising twice changes
    nothing."""
    from jaxrec.models.propagation import normalise

    train = tiny_split.train
    graph = jax.tree.map(jnp.asarray, bipartite_graph(train, "bcsr_vjp", capacity=len(train) + 7))
    graph["u_mask"] = graph["u_mask"].at[::5].set(0.0)  # some real edges masked out too
    data = train_data(train, B, lightgcn_inputs(graph))
    model = LightGCN(train.n_users, train.n_items, dim=4, layers=2, propagation="bcsr_vjp")
    state = member(create_members(model, jax.random.key(0)[None], adam(), data.inputs, {"l2": [0.0]}, [0.01]), 0)
    seen = []

    def step(state, batch, data):
        seen.append(data.inputs["graph"])
        return state, {"loss": jnp.float32(0.0)}

    make_epoch(step, B)(state, data)
    want = normalise(graph)
    assert len(seen) == 1 and "u_mask" not in seen[0] and "i_perm" not in seen[0]
    for k in ("u_w", "i_w"):
        np.testing.assert_array_equal(np.asarray(seen[0][k]), np.asarray(want[k]))
        np.testing.assert_array_equal(np.asarray(normalise(want)[k]), np.asarray(want[k]))
    assert float(jnp.abs(want["u_w"] - graph["u_w"]).max()) > 0  # the host weights were not the masked ones


@pytest.mark.parametrize("graph", [False, True], ids=["mf", "lightgcn"])
def test_members_with_different_data_equal_their_separate_runs(tiny_split, graph):
    """Member 0 trains on the full data, member 1 with 10 % of the interactions dropped: one
    program over stacked data variants (common capacity) equals the two unpadded runs."""
    train = tiny_split.train
    variants = [train, data_noise.drop(train, 0.1, seed=1)]
    cap = len(train)
    if graph:
        model = LightGCN(train.n_users, train.n_items, dim=8, layers=2, propagation="bcsr_vjp")
        own = [lightgcn_inputs(bipartite_graph(v, "bcsr_vjp")) for v in variants]
        shared = [lightgcn_inputs(bipartite_graph(v, "bcsr_vjp", capacity=cap)) for v in variants]
    else:
        model, own, shared = MF(train.n_users, train.n_items, dim=8), [{}, {}], [{}, {}]
    steps = max(train_data(v, B).positives.search_steps for v in variants)
    stacked = stack_data([train_data(v, B, i, capacity=cap, search_steps=steps) for v, i in zip(variants, shared)])
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    state = create_members(model, keys, adam(), own[0], {"l2": [1e-3, 1e-3]}, [0.05, 0.05])
    step = make_train_step(make_loss_fn(model, "bpr", with_l2=True), skip_empty=True)
    engine = make_engine(make_epoch(step, B), 2, data_batched=True)
    together = fit(engine, jax.tree.map(jnp.copy, state), stacked, epochs=3, progress=False)
    assert engine.epoch.traces() == 1
    for m, (v, inputs) in enumerate(zip(variants, own)):
        s, losses = _epochs(model, member(state, m), train_data(v, B, inputs), 3, skip_empty=False)
        got = together.member(m)
        for x, y in zip(jax.tree.leaves(got.state.params), jax.tree.leaves(s.params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
        assert int(got.state.step) == int(s.step)
    a, b = (np.asarray(together.member(m).state.params["params"]["embeddings"]["item"]) for m in (0, 1))
    assert not np.allclose(a, b)


def test_padding_users_are_never_sampled_and_get_no_gradient():
    """Users past the real ones (room for injected users) own no pair, are never a negative's
    owner in a real row, and their embedding rows get exactly zero gradient."""
    inter = random_interactions(n_users=20, n_items=30, per_user=6, seed=2)
    padded = Interactions(inter.users, inter.items, 25, inter.n_items, source="padded")  # users 20..24 empty
    model = MF(25, 30, dim=4)
    state = member(create_members(model, jax.random.key(0)[None], adam(), {}, {"l2": [1e-2]}, [0.1]), 0)
    data = train_data(padded, B, capacity=len(inter) + 2 * B)
    batches_of = jax.jit(lambda s, d: epoch_batches(s, d, B))
    for e in range(3):
        batches = batches_of(state.replace(step=jnp.int32(e * 100)), data)
        users = np.asarray(batches.users)[np.asarray(batches.mask) > 0]
        assert users.max() < 20
    loss_fn = make_loss_fn(model, "bpr", with_l2=True)
    b = jax.tree.map(lambda x: x[0], batches_of(state.replace(step=jnp.int32(0)), data))
    grad = jax.jit(jax.grad(loss_fn, has_aux=True))
    grads, _ = grad(state.params, {}, b.users, b.items, b.mask, jax.random.key(0), state.hparams)
    assert np.all(np.asarray(grads["params"]["embeddings"]["user"])[20:] == 0)
    trained, _ = _epochs(model, state, data, 2, skip_empty=True)
    before = np.asarray(state.params["params"]["embeddings"]["user"])[20:]
    np.testing.assert_array_equal(np.asarray(trained.params["params"]["embeddings"]["user"])[20:], before)


def test_members_of_one_program_must_share_their_structure(tiny_split):
    from jaxrec.errors import JaxrecError

    with pytest.raises(JaxrecError, match="members of one program may differ only in train.seed"):
        train_members([_cfg("mf"), dataclasses.replace(_cfg("mf"), model=ModelConfig(dim=4))], tiny_split)


def test_auto_member_loop_maps_large_members_on_a_cpu_and_vmaps_small_ones():
    from jaxrec.experiment.programs import CACHE_BYTES, member_loop

    small = create_members(
        MF(20, 10, 4), jax.random.split(jax.random.key(0), 2), adam(), {}, {"l2": [0.0, 0.0]}, [0.1, 0.1]
    )
    big = create_members(
        MF(600, 400, 64), jax.random.split(jax.random.key(0), 2), adam(), {}, {"l2": [0.0, 0.0]}, [0.1, 0.1]
    )
    assert 3 * 1000 * 64 * 4 > CACHE_BYTES  # the big member's params and moments pass the bound
    assert member_loop("auto", small, 2) == "vmap" and member_loop("auto", big, 2) == "map"
    assert member_loop("auto", big, 1) == "vmap" and member_loop("vmap", big, 2) == "vmap"
