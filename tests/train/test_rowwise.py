"""Row-wise sparse optimizers (jaxrec.train.rowwise): the sparse step against a hand-written
numpy reference built on the *dense* gradient, the dense path against optax's Adam, members,
checkpoints and config errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_interactions

from jaxrec.adversarial.apr import make_apr_loss
from jaxrec.config import AdvConfig, CheckpointConfig, Config, EvalConfig, ModelConfig, ParallelConfig, TrainConfig
from jaxrec.data.graph import bipartite_graph
from jaxrec.errors import JaxrecError
from jaxrec.experiment import programs, run, train_members
from jaxrec.experiment.programs import EpochSpec, ProgramKey, make_epoch_fn, make_step_fn
from jaxrec.experiment.training import build_training
from jaxrec.models import MF, LightGCN, NeuMF
from jaxrec.models.lightgcn import lightgcn_inputs
from jaxrec.robustness import data_noise
from jaxrec.train.rowwise import RowWise
from jaxrec.train.state import adam, create_state
from jaxrec.train.steps import Batch, make_loss_fn, train_data

B1, B2, EPS = 0.9, 0.999, 1e-8


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _reference_step(params, ref, grads, users, items, mask, t, lr, kind):
    """One step by hand on the dense gradient: the rows the real batch rows touch move by the
    row-wise rule, the other rows (and their moments) stay; dense Adam for the rest."""
    real = mask > 0
    touched = {"user": np.unique(users[real]), "item": np.unique(items[real].ravel())}
    out = jax.tree.map(np.copy, params)
    for name, table in params["params"]["embeddings"].items():
        g = grads["params"]["embeddings"][name]
        rows = touched["user" if name.startswith("user") else "item"]
        s = ref["rows"][name]
        if kind == "lazy_adam":
            s["mu"][rows] = B1 * s["mu"][rows] + (1 - B1) * g[rows]
            s["nu"][rows] = B2 * s["nu"][rows] + (1 - B2) * g[rows] ** 2
            step = s["mu"][rows] / (1 - B1**t) / (np.sqrt(s["nu"][rows] / (1 - B2**t)) + EPS)
        else:
            s["acc"][rows] += np.mean(g[rows] ** 2, axis=-1)
            step = g[rows] / (np.sqrt(s["acc"][rows])[:, None] + EPS)
        out["params"]["embeddings"][name][rows] = table[rows] - lr * step
    rest = {k: v for k, v in params["params"].items() if k != "embeddings"}
    g_rest = {k: v for k, v in grads["params"].items() if k != "embeddings"}
    leaves, tree = jax.tree.flatten(rest)
    new = []
    for j, (p, g) in enumerate(zip(leaves, jax.tree.leaves(g_rest))):
        m, v = ref["dense"].get(j, (0.0, 0.0))
        m, v = B1 * m + (1 - B1) * g, B2 * v + (1 - B2) * g**2
        ref["dense"][j] = (m, v)
        new.append(p - lr * (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS))
    out["params"].update(jax.tree.unflatten(tree, new))
    return out


def _batches(n_users, n_items, b, steps, seed=0):
    """Batches with repeated users and items and a padding row (mask 0) pointing at real ids."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        users = rng.integers(0, n_users, b)
        items = rng.integers(0, n_items, (b, 2))
        mask = np.ones(b, np.float32)
        mask[-1] = 0.0
        yield Batch(jnp.asarray(users, jnp.int32), jnp.asarray(items, jnp.int32), jnp.asarray(mask))


@pytest.mark.parametrize(
    "name, kind",
    [("mf", "lazy_adam"), ("mf", "rowwise_adagrad"), ("neumf", "lazy_adam"), ("mf-apr", "rowwise_adagrad")],
)
def test_sparse_step_is_the_row_rule_applied_to_the_dense_gradient(kind, name):
    """Three steps of the row view (gather, differentiate, scatter) equal the rule applied by
    hand to the touched rows of the full model's dense gradient; untouched rows and their state
    never change (lazy: no decay)."""
    n_users, n_items, b, lr = 40, 30, 12, 0.05
    if name == "neumf":
        model = NeuMF(n_users, n_items, 6, mlp_layers=(8, 4), dropout=0.2)
    else:
        model = MF(n_users, n_items, 6)
    adv = "apr" if name.endswith("apr") else "none"
    spec = EpochSpec(model, "bpr", True, adv, False, "fgm", b, 1, "uniform", False, RowWise(kind))
    step = jax.jit(make_step_fn(spec))
    full_loss = make_apr_loss(model, "bpr", True) if adv == "apr" else make_loss_fn(model, "bpr", with_l2=True)
    hp = {"l2": 1e-2, "eps": 0.5, "reg": 1.0, "start_step": 0}
    state = create_state(model, jax.random.key(3), spec.optimizer, {}, hp, lr)
    data = train_data(random_interactions(n_users, n_items, 3), b)
    params = _np(state.params)
    ref = {"rows": {}, "dense": {}}
    for k, t in params["params"]["embeddings"].items():
        ref["rows"][k] = (
            {"mu": np.zeros_like(t), "nu": np.zeros_like(t)} if kind == "lazy_adam" else {"acc": np.zeros(len(t))}
        )
    dense_grad = jax.jit(jax.grad(full_loss, has_aux=True))  # one program for the 3 steps
    for t, batch in enumerate(_batches(n_users, n_items, b, 3), start=1):
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 2)
        grads, _ = dense_grad(
            state.params, {}, batch.users, batch.items, batch.mask, key, {**state.hparams, "step": state.step}
        )
        params = _reference_step(params, ref, _np(grads), *map(np.asarray, batch), t, lr, kind)
        state, _ = step(state, batch, data)
        for a, r in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)):
            np.testing.assert_allclose(np.asarray(a), r, rtol=2e-4, atol=2e-6)
        for k, s in ref["rows"].items():
            for m, v in s.items():
                np.testing.assert_allclose(
                    np.asarray(state.opt_state.rows["embeddings"][k][m]), v, rtol=2e-4, atol=1e-9
                )
    assert int(state.step) == 3 and int(state.opt_state.count) == 3


def test_dense_path_lazy_adam_is_adam_for_a_graph_model():
    """LightGCN propagates over every row: every row is touched, so lazy Adam is Adam there."""
    inter = random_interactions(20, 16, 4)
    model = LightGCN(20, 16, 6, layers=2)
    inputs = lightgcn_inputs(bipartite_graph(inter, "bcsr_vjp"))
    data = train_data(inter, 16, inputs)
    out = {}
    for name, tx in (("lazy", RowWise("lazy_adam")), ("adam", adam())):
        spec = EpochSpec(
            model,
            "bpr",
            False,
            "none",
            False,
            "fgm",
            16,
            1,
            "uniform",
            False,
            tx,
        )
        epoch = jax.jit(make_epoch_fn(spec))
        state = create_state(model, jax.random.key(0), tx, inputs, {"l2": 0.0}, 0.01)
        for _ in range(3):
            state, _ = epoch(state, data)
        out[name] = state.params
    for a, b in zip(jax.tree.leaves(out["lazy"]), jax.tree.leaves(out["adam"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def _cfg(tmp_path=None, optimizer="lazy_adam", seed=0, epochs=3, every=0, model="mf", **train) -> Config:
    return Config(
        name="rw",
        output_dir=str(tmp_path or "runs"),
        model=ModelConfig(name=model, dim=8),
        eval=EvalConfig(ks=(5,)),
        train=TrainConfig(epochs=epochs, batch_size=16, lr=0.02, l2=1e-3, seed=seed, optimizer=optimizer, **train),
        checkpoint=CheckpointConfig(every=every, keep=2, dir=str(tmp_path / "ck") if every else None),
    )


@pytest.mark.parametrize("kind, loop", [("lazy_adam", "vmap"), ("rowwise_adagrad", "map")])
def test_members_on_their_own_data_equal_separate_runs(tiny_split, kind, loop):
    """Two members, each on its own data variant (padded to one shape), batched (vmap) or one
    after the other in the program (map): each equals its separate, unpadded run."""
    trains = [data_noise.drop(tiny_split.train, 0.2, 0), data_noise.add(tiny_split.train, 0.1, 1)]
    cfgs = [
        dataclasses.replace(_cfg(optimizer=kind, seed=s), parallel=ParallelConfig(member_loop=loop)) for s in (0, 1)
    ]
    together = train_members(cfgs, tiny_split, progress=False, trains=trains)
    assert together.engine.loop == loop and together.training.data_batched
    for m in (0, 1):
        alone = train_members([cfgs[m]], tiny_split, progress=False, trains=[trains[m]])
        for x, y in zip(
            jax.tree.leaves(together.fit.member(m).best_params), jax.tree.leaves(alone.fit.member(0).best_params)
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
        assert together.metrics[m] == pytest.approx(alone.metrics[0], abs=1e-4)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tiny_split):
    """The row state (moments, count, learning rate) is checkpointed: a resumed lazy-Adam run
    repeats the uninterrupted one bit for bit."""
    full = run(_cfg(tmp_path / "a", epochs=4), progress=False, write=False, split=tiny_split)
    run(_cfg(tmp_path, epochs=2, every=1), progress=False, write=False, split=tiny_split)
    resumed = run(_cfg(tmp_path, epochs=4, every=1), progress=False, write=False, split=tiny_split, resume=True)
    for a, b in zip(
        jax.tree.leaves((resumed.params, resumed.fit.state.opt_state)),
        jax.tree.leaves((full.params, full.fit.state.opt_state)),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(resumed.fit.state.opt_state.count) == int(full.fit.state.step) > 0


def test_bad_optimizer_settings_are_one_clear_error(tiny_split):
    with pytest.raises(JaxrecError, match=r"train.optimizer must be one of .*got 'sgd'"):
        run(_cfg(optimizer="sgd"), progress=False, write=False, split=tiny_split)
    with pytest.raises(JaxrecError, match=r"adv.relative.*row-wise"):
        run(
            dataclasses.replace(_cfg(), adv=AdvConfig(method="apr", relative=True)),
            progress=False,
            write=False,
            split=tiny_split,
        )


def test_the_optimizer_is_one_value_that_keys_the_compiled_programs(tiny_split):
    """``train.optimizer`` (with its betas, weight decay and schedule) becomes one optax value in the
    experiment layer (:func:`jaxrec.experiment.settings.optimizer`); the epoch's key holds the
    value, not the name: configs differing only in optimizer settings never share an engine,
    identical ones do."""
    variants = {
        "adam": {"optimizer": "adam"},
        "betas": {"optimizer": "adam", "betas": (0.8, 0.99)},
        "decay": {"optimizer": "adam", "weight_decay": 1e-4},
        "cosine": {"optimizer": "adam", "schedule": "warmup_cosine", "warmup_epochs": 1},
        "lazy": {"optimizer": "lazy_adam"},
        "lazy_betas": {"optimizer": "lazy_adam", "betas": (0.8, 0.99)},
        "adagrad": {"optimizer": "rowwise_adagrad"},
    }
    specs = {name: build_training(_cfg(**kw), tiny_split).spec for name, kw in variants.items()}
    assert not any(isinstance(s.optimizer, str) for s in specs.values())
    assert isinstance(specs["lazy"].optimizer, RowWise) and specs["lazy_betas"].optimizer.b1 == 0.8
    assert len(set(specs.values())) == len(specs)  # hashable, and every setting tells them apart

    def key(spec):
        return ProgramKey(spec, 1, False, (), None, None)

    engines = {name: programs.engine(key(s)) for name, s in specs.items()}
    assert len({id(e) for e in engines.values()}) == len(engines)
    for name, kw in variants.items():  # the same settings again: equal values, the same engine
        again = build_training(_cfg(**kw), tiny_split).spec
        assert again == specs[name] and hash(again) == hash(specs[name])
        assert programs.engine(key(again)) is engines[name]
    one, two = (train_members([_cfg(optimizer="adam", epochs=1)], tiny_split, progress=False) for _ in range(2))
    other = train_members([_cfg(optimizer="adam", epochs=1, betas=(0.8, 0.99))], tiny_split, progress=False)
    assert one.engine is two.engine and other.engine is not one.engine


def test_a_row_wise_optimizer_refuses_dense_adams_settings(tiny_split):
    for extra in ({"weight_decay": 1e-4}, {"schedule": "warmup_cosine"}):
        with pytest.raises(JaxrecError, match="takes train.betas only"):
            run(_cfg(optimizer="lazy_adam", **extra), progress=False, write=False, split=tiny_split)
