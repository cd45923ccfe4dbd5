"""``jaxrec gan`` end to end on a tiny CSV data set written into tmp_path."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial.gan_training import d_prob
from jaxrec.adversarial.realism import realism_report
from jaxrec.cli import main
from jaxrec.config import load_config
from jaxrec.data import load_dataset
from jaxrec.experiment import load_split
from jaxrec.experiment.gans import spec_from_config, train_cfgan

# the same sizes as tests/adversarial/test_cfgan.py (30 users x 40 items, G/D widths, batch, ks),
# so the CFGAN programs compiled there are reused here
TINY_GAN = [
    "gan.noise_dim=4",
    "gan.g_hidden=[8]",
    "gan.d_hidden=[8]",
    "gan.epochs=2",
    "gan.batch_size=16",
    "gan.n_fake=6",
    "gan.report_every=1",
    "gan.holdout=0.3",
    "gan.fresh_folds=2",
    "eval.ks=[5,10]",
]


@pytest.fixture
def tiny_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id"]
    for u in range(30):
        items = [u % 40, (u + 30) % 40] + [int(i) for i in rng.choice(40, size=12, replace=False)]
        for i in dict.fromkeys(items):  # every item occurs, ordered, no duplicates
            lines.append(f"u{u},i{i}")
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def rated_csv(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["user_id,item_id,rating"]
    for u in range(40):
        for i in dict.fromkeys([u % 40, (u + 7) % 40, *(int(i) for i in rng.choice(40, size=10, replace=False))]):
            lines.append(f"u{u},i{i},{int(rng.integers(1, 6))}")
    path = tmp_path / "rated.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(tmp_path, data, extra):
    sets = [f"data.dataset={data}", f"output_dir={tmp_path / 'runs'}", "name=tiny", *TINY_GAN, *extra]
    return ["gan", "--quiet", *sum((["--set", s] for s in sets), [])]


def test_gan_cli_fake_users(tmp_path, tiny_csv, capsys):
    assert main(_args(tmp_path, tiny_csv, ["gan.target_items=[3]"])) == 0
    out = capsys.readouterr().out
    assert "realism" in out and "detector" in out
    run = tmp_path / "runs" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    samples = np.load(run / "samples.npz")
    # the figures follow from the saved profiles, the held-out users and the checkpointed D
    reference = load_dataset(str(tiny_csv)).dense()[samples["users_reference"]]
    restored, _ = _restore(run)
    spec = spec_from_config(load_config(run / "config.yaml").gan, 40)
    for kind in ("gan", "random"):
        figures = realism_report(samples[f"{kind}_profiles"], reference)
        for name in ("popularity_jsd", "nn_cosine", "diversity", "length_ks"):
            assert metrics[f"realism_{kind}"][name] == pytest.approx(figures[name], abs=1e-6), (kind, name)
        d = np.asarray(d_prob(spec, restored.d.params, jnp.asarray(samples[f"{kind}_profiles"], jnp.float32)))
        np.testing.assert_allclose(d, samples[f"d_{kind}"], rtol=1e-5)
        assert metrics[f"d_{kind}_profiles"] == pytest.approx(d.mean(), rel=1e-5)
        pairs = (1 - d)[:, None] - (1 - samples["d_reference"])[None, :]  # suspicion: fakes vs real users
        assert metrics[f"detector_{kind}"]["auc"] == pytest.approx(np.mean((pairs > 0) + 0.5 * (pairs == 0)))
    assert samples["gan_profiles"].shape == samples["random_profiles"].shape == (6, 40)
    assert np.all(samples["gan_profiles"][:, 3] == 1) and np.all(samples["random_profiles"][:, 3] == 1)
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 2 and "realism/nn_cosine" in hist[-1] and "eval/d_real" in hist[-1]
    # the final checkpoint restores the final state exactly
    restored, template = _restore(run)
    assert int(restored.g.step) == int(hist[-1]["epoch"]) * 2  # 21 training users / 16 -> 2 steps
    kernel = restored.g.params["params"]["out"]["kernel"]
    assert not np.allclose(kernel, template.g.params["params"]["out"]["kernel"])
    assert jax.random.key_data(restored.key).shape == jax.random.key_data(template.key).shape


def _restore(run):
    """The latest checkpoint of the GAN run in ``run``: ``(state, fresh template)``."""
    from jaxrec.config import load_config
    from jaxrec.experiment.gans import spec_from_config, state_from_config
    from jaxrec.train.checkpoint import Checkpointer
    from jaxrec.train.engine import init_tracker

    cfg = load_config(run / "config.yaml")
    template = state_from_config(cfg.gan, spec_from_config(cfg.gan, 40))
    stacked = jax.tree.map(lambda x: x[None], template)
    with Checkpointer(run / "checkpoints") as ck:
        tree, _ = ck.restore({"state": stacked, "tracker": init_tracker(stacked.g.params, 1, False)})
    return jax.tree.map(lambda x: x[0], tree["state"]), template


def test_gan_resume_equals_uninterrupted(tmp_path, tiny_csv, capsys):
    """``jaxrec gan`` stopped after 2 of 4 epochs and resumed ends bit-exactly where an
    uninterrupted 4-epoch run does (same G, D, optimiser states, steps and keys)."""
    full, part = tmp_path / "full", tmp_path / "part"
    four = ["gan.epochs=4", "gan.report_every=0"]
    assert main(_args(full, tiny_csv, four)) == 0
    assert main(_args(part, tiny_csv, ["gan.epochs=2", "gan.report_every=0", "checkpoint.every=1"])) == 0
    assert main([*_args(part, tiny_csv, [*four, "checkpoint.every=1"]), "--resume"]) == 0
    a, _ = _restore(full / "runs" / "tiny")
    b, _ = _restore(part / "runs" / "tiny")
    for x, y in zip(jax.tree.leaves(jax.tree.map(_raw, a)), jax.tree.leaves(jax.tree.map(_raw, b))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    hist = [json.loads(line) for line in (part / "runs" / "tiny" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [3, 4]


def _raw(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def test_gan_cli_cfgan_and_errors(tmp_path, tiny_csv, capsys):
    cfgan = ["gan.conditional=true", "gan.noise_dim=0"]
    assert main(_args(tmp_path, tiny_csv, cfgan)) == 0
    metrics = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    # the numbers of a separate, in-process CFGAN training of the same configuration
    cfg = load_config(None, _args(tmp_path, tiny_csv, cfgan)[3::2])
    alone = train_cfgan(cfg, load_split(cfg.data))
    for key in ("recall@5", "ndcg@10"):
        assert metrics[key] == pytest.approx(alone.metrics[key], abs=1e-6), key
    assert metrics["d_real"] == pytest.approx(alone.fit.history[-1]["d_real"], abs=1e-6)
    capsys.readouterr()
    assert main(_args(tmp_path, tiny_csv, ["gan.noise_dim=0"])) == 2
    assert "gan.noise_dim" in capsys.readouterr().err
    for bad, key in (
        ("gan.holdout=1.5", "gan.holdout"),
        ("gan.profile_length=median", "gan.profile_length"),
        ("gan.fpr=0", "gan.fpr"),
        ("gan.target_items=[99]", "gan.target_items"),
        ("gan.fresh_folds=5", "gan.fresh_folds"),
        ("gan.rated=true", "gan.rated"),
        ("gan.relax=soft", "gan.relax"),
        ("gan.label_smoothing=0.1 gan.loss=hinge", "gan.label_smoothing"),
        ("gan.unknown=1", "gan.unknown"),
    ):
        assert main(_args(tmp_path, tiny_csv, bad.split())) == 2
        assert key in capsys.readouterr().err


STABLE = [
    "data.rating_col=rating",
    "gan.rated=true",
    "gan.relax=gumbel",
    "gan.rating_head=categorical",
    "gan.loss=wgan-gp",
    "gan.d_steps=2",
    "gan.length_input=true",
    "gan.select=realism",
    "gan.dropout=0",
    "gan.epochs=3",
    "gan.holdout=0.5",
    "gan.n_fake=8",
    "gan.target_items=[3]",
]


def test_gan_cli_stabilised_rated_fakes_against_every_attack(tmp_path, rated_csv, capsys):
    """The stabilised switches end to end on rated data: G's rated fakes and the classic attacks'
    with the same lengths, the selected epoch, the fresh detector."""
    assert main(_args(tmp_path, rated_csv, STABLE)) == 0
    out = capsys.readouterr().out
    assert "fresh" in out and "bandwagon" in out
    run = tmp_path / "runs" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    gaps = [h["valid/realism"] for h in hist]
    assert len(gaps) == 3 and metrics["selection"]["epoch"] == 1 + int(np.argmax(gaps))
    samples = np.load(run / "samples.npz")
    kinds = ("gan", "random", "average", "bandwagon")
    lengths = [(samples[f"{k}_profiles"] > 0).sum(1) for k in kinds]
    for k, n in zip(kinds, lengths):
        np.testing.assert_array_equal(n, lengths[0])  # every kind has the GAN's lengths
        x = samples[f"{k}_profiles"]
        assert set(np.unique(x)) <= {0, 1, 2, 3, 4, 5} and np.all(x[:, 3] == 5)  # rated, target pushed
        assert {"realism_" + k, "fresh_" + k, "detector_" + k} <= set(metrics)
        assert "rating_jsd" in metrics["realism_" + k]
