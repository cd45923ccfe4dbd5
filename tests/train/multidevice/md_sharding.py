"""Sharded update steps on 4 simulated CPU devices (run by tests/train/test_parallel.py).

Not collected by the main suite (the file name has no ``test_`` prefix): it needs
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX starts, so
``test_parallel.py`` runs ``python -m pytest`` on this file in a subprocess. The APR and GAN
steps join here: add a test that builds their epoch and compares 1 vs 4 devices the same way.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from conftest import random_interactions
from jax.sharding import PartitionSpec as P

from jaxrec.config import CheckpointConfig, Config, EvalConfig, ParallelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.models import MF
from jaxrec.train import parallel as par
from jaxrec.train.engine import make_engine
from jaxrec.train.loop import fit, jit_epoch
from jaxrec.train.state import create_state, member, stack
from jaxrec.train.steps import epoch_batches, make_epoch, make_loss_fn, make_train_step, train_data

B = 32  # divisible by 4
EPOCHS = 3


@pytest.fixture(scope="module")
def setup():
    inter = random_interactions(n_users=64, n_items=48, per_user=8, seed=1)
    model = MF(inter.n_users, inter.n_items, 16)
    tx = optax.adam(0.05)
    fresh = lambda: create_state(model, jax.random.key(0), tx)  # noqa: E731
    data = train_data(inter, B)
    return model, fresh, data


@pytest.fixture(scope="module")
def reference(setup):
    """The 1-device run: (final state, [EPOCHS, n_batches] losses)."""
    return single_device_run(*setup)


def make_epoch_fn(model):
    """A new epoch function (and so a new trace counter) per call."""
    return make_epoch(make_train_step(make_loss_fn(model)), B)


def single_device_run(model, fresh, data):
    epoch = jit_epoch(make_epoch_fn(model))
    state, losses = fresh(), []
    for _ in range(EPOCHS):
        state, m = epoch(state, data)
        losses.append(np.asarray(m["loss"]))
    return state, np.stack(losses)


def sharded_run(model, fresh, data, mesh):
    """The same run through the member engine compiled for ``mesh`` (one member): final state
    and per-epoch mean losses."""
    engine = make_engine(make_epoch_fn(model), 1, mesh=mesh)
    out = fit(engine, stack([fresh()]), data, epochs=EPOCHS, progress=False)
    assert engine.traces() == 1  # no recompilation per epoch
    return member(out.state, 0), np.asarray([h["loss"][0] for h in out.history]), out.state


def assert_params_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_four_devices_visible():
    assert jax.device_count() == 4, jax.devices()


def test_data_parallel_matches_one_device(setup, reference):
    model, fresh, data = setup
    ref_state, ref_losses = reference
    mesh = par.make_mesh()
    assert dict(mesh.shape) == {"member": 1, "data": 4, "model": 1}
    state, losses, stacked = sharded_run(model, fresh, data, mesh)
    np.testing.assert_allclose(losses, ref_losses.mean(axis=1), rtol=1e-5)
    assert_params_close(state.params, ref_state.params)
    assert int(state.step) == int(ref_state.step)
    emb = stacked.params["params"]["embeddings"]["user"]
    assert emb.sharding.is_fully_replicated and len(emb.sharding.device_set) == 4


def test_batches_are_split_over_the_data_axis(setup):
    model, fresh, data = setup
    mesh = par.make_mesh()
    state, data = par.place_members(fresh(), mesh, batched=False), par.place_members(data, mesh, batched=False)
    with jax.set_mesh(mesh):
        batches = jax.jit(lambda s, d: epoch_batches(s, d, B))(state, data)
    for arr in batches:
        assert arr.sharding.spec[:2] == (None, "data"), arr.sharding
        shards = arr.addressable_shards
        assert len(shards) == 4 and {s.device for s in shards} == set(jax.devices())
        assert all(s.data.shape[1] == B // 4 for s in shards)  # each device holds a quarter of B
        assert all(s.data.shape[0] == arr.shape[0] for s in shards)
    # the same batches as without a mesh: the split does not change the data
    plain = jax.jit(lambda s, d: epoch_batches(s, d, B))(fresh(), train_data(random_interactions(64, 48, 8, 1), B))
    for a, b in zip(batches, plain):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_model_axis_shards_embedding_rows_and_matches(setup, reference):
    model, fresh, data = setup
    ref_state, ref_losses = reference
    mesh = par.make_mesh(data=2, model=2)
    state, losses, stacked = sharded_run(model, fresh, data, mesh)
    np.testing.assert_allclose(losses, ref_losses.mean(axis=1), rtol=1e-5)
    assert_params_close(state.params, ref_state.params)
    for name, table in stacked.params["params"]["embeddings"].items():
        assert table.sharding.spec == P("member", "model", None), (name, table.sharding)
        assert {s.data.shape[1] for s in table.addressable_shards} == {table.shape[1] // 2}
    mu = stacked.opt_state[0].mu["params"]["embeddings"]["item"]  # Adam's moments follow the rows
    assert mu.sharding.spec == P("member", "model", None)


def test_batch_size_must_divide_by_the_data_axis():
    mesh = par.make_mesh()
    with pytest.raises(JaxrecError, match="batch size 30 must be divisible by the 4"):
        par.check_batch_size(30, mesh)
    with pytest.raises(JaxrecError, match="a mesh of member=1 x data=3 x model=2 needs 6 devices"):
        par.make_mesh(data=3, model=2)
    with pytest.raises(JaxrecError, match="embedding table 'user' has 943 rows, not divisible"):
        par.member_shardings({"params": {"embeddings": {"user": np.zeros((1, 943, 4))}}}, par.make_mesh(model=2))


def test_run_with_parallel_config_resumes_exactly(tmp_path, tiny_split):
    """``run()`` with ``parallel.data: 4`` trains on the mesh, and resuming it on the same
    4-device layout is bit-exact. (``run()`` on a mesh vs one device: tests/train/test_distributed.py.)"""
    import shutil

    from jaxrec.experiment import run

    ck = CheckpointConfig(every=1, keep=4, dir=str(tmp_path / "ck"))
    cfg = Config(
        name="md",
        output_dir=str(tmp_path),
        train=TrainConfig(epochs=4, batch_size=16, lr=0.05),
        eval=EvalConfig(ks=(5,)),
        parallel=ParallelConfig(data=4),
        checkpoint=ck,
    )
    four = run(cfg, progress=False, write=False, split=tiny_split)
    assert four.params["params"]["embeddings"]["user"].sharding.num_devices == 4
    # interrupt after epoch 2 (what a killed run leaves), then resume on the same layout
    shutil.rmtree(tmp_path / "ck" / "3")
    shutil.rmtree(tmp_path / "ck" / "4")
    resumed = run(cfg, progress=False, write=False, split=tiny_split, resume=True)
    assert [h["epoch"] for h in resumed.fit.history] == [3, 4]
    assert [h["loss"] for h in resumed.fit.history] == [h["loss"] for h in four.fit.history[2:]]
    assert resumed.params["params"]["embeddings"]["user"].sharding.num_devices == 4
    for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(four.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_gan_epoch_data_parallel_matches_one_device():
    """The GAN's pair of states (G, D; Goodfellow et al. 2014 / CFGAN) through the same engine
    and mesh: 4 devices equal 1 device, user batches split along 'data', one trace."""
    from jaxrec.adversarial.gan_training import GANSpec, create_gan_state, fit_gan, gan_adam, gan_data

    rng = np.random.default_rng(0)
    data = gan_data((rng.random((60, 24)) < 0.25).astype(np.float32))  # 60 users: last batch padded
    spec = GANSpec(
        n_items=24, noise_dim=0, g_hidden=(16,), d_hidden=(16,), conditional=True, non_saturating=True, d_steps=2
    )
    fresh = lambda: create_gan_state(spec, jax.random.key(0), g_tx=gan_adam(1e-2), d_tx=gan_adam(1e-2))  # noqa: E731
    one = fit_gan(spec, fresh(), data, epochs=2, batch_size=16)
    four = fit_gan(spec, fresh(), data, epochs=2, batch_size=16, mesh=par.make_mesh(data=4))
    np.testing.assert_allclose(
        [h["d_loss"] for h in four.history], [h["d_loss"] for h in one.history], rtol=1e-5, atol=1e-6
    )
    assert_params_close(four.state.g.params, one.state.g.params)
    assert_params_close(four.state.d.params, one.state.d.params)
    assert four.state.g.params["params"]["out"]["kernel"].sharding.num_devices == 4


@pytest.mark.parametrize("member, data_axis", [(4, 1), (2, 2)])
def test_member_axis_shards_members_and_matches_one_device(tiny_split, member, data_axis):
    """4 seeds x 2 learning rates... as one sweep: members split over the 'member' mesh axis
    (alone, and with batches over 'data') equal the same members on one device."""
    from jaxrec.experiment import train_members

    cfgs = [
        Config(
            train=TrainConfig(epochs=2, batch_size=16, lr=lr, seed=seed),
            eval=EvalConfig(ks=(5,)),
            parallel=ParallelConfig(member=member, data=data_axis),
        )
        for seed in (0, 1)
        for lr in (0.01, 0.05)
    ]
    sharded = train_members(cfgs, tiny_split, progress=False)
    plain = train_members(
        [c.__class__(**{**c.__dict__, "parallel": ParallelConfig()}) for c in cfgs], tiny_split, progress=False
    )
    table = sharded.fit.state.params["params"]["embeddings"]["user"]
    assert table.sharding.spec[0] == "member" and len({s.device for s in table.addressable_shards}) == 4
    assert {s.data.shape[0] for s in table.addressable_shards} == {4 // member}
    assert_params_close(sharded.fit.state.params, plain.fit.state.params)
    for a, b in zip(sharded.metrics, plain.metrics):
        for k in a:
            assert abs(a[k] - b[k]) < 1e-4, (k, a[k], b[k])


def test_apr_data_parallel_matches_one_device(tiny_split):
    """APR's loss wrapper (adversarial gradient, FGM, perturbed term) through the same mesh:
    batches over 'data' on 4 devices equal 1 device."""
    from jaxrec.config import AdvConfig
    from jaxrec.experiment import train_members

    def cfg(parallel):
        return Config(
            train=TrainConfig(epochs=2, batch_size=16, lr=0.05),
            eval=EvalConfig(ks=(5,)),
            adv=AdvConfig(method="apr", eps=0.5, relative=True, start_epoch=1),
            parallel=parallel,
        )

    four = train_members([cfg(ParallelConfig(data=4))], tiny_split, progress=False)
    one = train_members([cfg(ParallelConfig())], tiny_split, progress=False)
    a, b = four.fit.member(0), one.fit.member(0)
    np.testing.assert_allclose([h["adv_loss"] for h in a.history], [h["adv_loss"] for h in b.history], rtol=1e-5)
    assert a.history[-1]["adv_loss"] > 0
    assert_params_close(a.state.params, b.state.params)


def test_sequence_model_data_parallel_matches_one_device(tmp_path):
    """SASRec's sequence epoch (windows gathered per step, negatives per position, length
    buckets) with batches over 'data' on 4 devices equals 1 device."""
    from jaxrec.config import DataConfig, ModelConfig
    from jaxrec.experiment import train_members
    from jaxrec.experiment.data import load_split

    rng = np.random.default_rng(0)
    rows = [f"{u},{int(rng.integers(0, 30))},{t}" for u in range(40) for t in range(int(rng.integers(4, 12)))]
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")

    def cfg(parallel):
        return Config(
            data=DataConfig(dataset=str(path), time_col="timestamp", split="leave_one_out"),
            model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=8, dropout=0.0),
            train=TrainConfig(epochs=2, batch_size=8, loss="bce", buckets=(4,)),
            eval=EvalConfig(ks=(5,)),
            parallel=parallel,
        )

    split = load_split(cfg(ParallelConfig()).data, sequential=True)
    four = train_members([cfg(ParallelConfig(data=4))], split, progress=False)
    one = train_members([cfg(ParallelConfig())], split, progress=False)
    a, b = four.fit.member(0), one.fit.member(0)
    np.testing.assert_allclose([h["loss"] for h in a.history], [h["loss"] for h in b.history], rtol=1e-5)
    assert_params_close(a.state.params, b.state.params)


@pytest.mark.parametrize("optimizer", ["lazy_adam", "rowwise_adagrad"])
def test_rowwise_optimizers_on_a_data_x_model_mesh_match_one_device(tiny_split, optimizer):
    """Row-wise updates (gather the batch's rows, scatter the update back) on tables whose rows,
    with the row state, are split over 'model', batches over 'data': equal to one device."""
    from jaxrec.experiment import train_members

    def cfg(parallel):
        return Config(
            train=TrainConfig(epochs=2, batch_size=16, lr=0.05, optimizer=optimizer),
            eval=EvalConfig(ks=(5,)),
            parallel=parallel,
        )

    four = train_members([cfg(ParallelConfig(data=2, model=2))], tiny_split, progress=False)
    one = train_members([cfg(ParallelConfig())], tiny_split, progress=False)
    assert_params_close(four.fit.state.params, one.fit.state.params)
    rows = four.fit.state.opt_state.rows["embeddings"]["item"]
    for leaf in jax.tree.leaves(rows):
        assert leaf.sharding.spec[:2] == ("member", "model"), leaf.sharding
