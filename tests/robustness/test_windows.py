"""Sequence victims under input-window perturbation: the strength sweep against a hand
computation (FGM per position against the victim's own loss, padding and the mask token never
moved), strength 0 against the clean model, the methods' ordering, and the robustness study's
checks."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrec.config import Config, DataConfig, EvalConfig, ModelConfig, RobustnessConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.models import build_model
from jaxrec.experiment.studies import robustness as study
from jaxrec.robustness import PGD, perturbed_metrics
from jaxrec.robustness.windows import WindowLoss
from jaxrec.train.state import init_params

MAX_LEN = 6


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    rng = np.random.default_rng(5)
    lines = ["user_id,item_id,timestamp"]
    for u in range(24):
        for t in range(int(rng.integers(3, 10))):  # some windows are short: padding on the left
            lines.append(f"{u},{int(rng.integers(0, 20))},{t}")
    path = tmp_path_factory.mktemp("w") / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_split(DataConfig(dataset=str(path), split="leave_one_out"), sequential=True)


def _victim(split, name):
    cfg = ModelConfig(name=name, dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0)
    model, _ = build_model(cfg, split.train)
    params = init_params(model, jax.random.key(1))
    ranking = split_ranking(split, "test", 8, max_len=MAX_LEN, mask_history=False)
    return model, params, ranking


def _hand_fgm_loss(model, params, ranking, eps):
    """Mean CE of the held-out item at the last position, every real input row moved by
    ``eps`` along its own gradient (numpy-side masking, jax.grad of the plain model)."""
    cache = model.apply(params, method="embeddings")
    mask = np.asarray(ranking.mask).reshape(-1)
    queries = np.asarray(ranking.queries).reshape(-1, MAX_LEN)[mask]
    targets = np.asarray(ranking.targets)[..., 0].reshape(-1)[mask]
    window = model.apply(params, jnp.asarray(queries), method="query_window")
    rows = model.apply(params, window, method="embed").astype(jnp.float32)

    def losses(r):
        scores = model.apply(params, r, window, cache, method="window_scores")
        return optax.softmax_cross_entropy_with_integer_labels(scores, jnp.asarray(targets))

    g = np.asarray(jax.grad(lambda r: jnp.sum(losses(r)))(rows))
    norm = np.linalg.norm(g, axis=-1, keepdims=True)
    real = (np.asarray(window) < model.n_items)[..., None]
    delta = np.where((norm > 0) & real, eps * g / np.where(norm > 0, norm, 1.0), 0.0)
    assert np.all(delta[~real[..., 0]] == 0) and np.allclose(np.linalg.norm(delta[real[..., 0]], axis=-1), eps)
    return float(jnp.mean(losses(rows + delta))), float(jnp.mean(losses(rows)))


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_fgm_moves_every_real_position_along_its_own_gradient(split, name):
    model, params, ranking = _victim(split, name)
    out = perturbed_metrics(model, params, {}, None, ranking, eps=[0.0, 0.3], ks=(5,), window_loss=WindowLoss("ce"))
    adv, clean = _hand_fgm_loss(model, params, ranking, 0.3)
    assert out.rows[1]["adv_loss"] == pytest.approx(adv, rel=1e-5)
    assert out.clean["adv_loss"] == pytest.approx(clean, rel=1e-5) and adv > clean
    # strength 0 is the clean model: its metrics, the same top lists, the clean loss
    zero = out.rows[0]
    assert zero["jaccard@5"] == 1.0 and zero["adv_loss"] == pytest.approx(clean, rel=1e-6)
    assert all(zero[k] == pytest.approx(v, abs=1e-6) for k, v in out.clean.items() if k != "adv_loss")


def test_the_gradient_hurts_more_than_noise_and_pgd_at_least_as_much_as_fgm(split):
    model, params, ranking = _victim(split, "sasrec")
    loss = {
        m: perturbed_metrics(
            model, params, {}, None, ranking, eps=[0.5], method=m, ks=(5,), relative=True, seeds=2, pgd=PGD(5)
        ).rows
        for m in ("random", "fgm", "pgd")
    }
    mean = {m: np.mean([r["adv_loss"] for r in rows]) for m, rows in loss.items()}
    assert mean["fgm"] > mean["random"] and mean["pgd"] >= mean["fgm"] - 1e-6, mean


def test_the_sampled_adversary_losses_take_the_victims_negatives(split):
    model, params, ranking = _victim(split, "sasrec")
    bce = perturbed_metrics(model, params, {}, None, ranking, eps=[0.0], ks=(5,), window_loss=WindowLoss("bce", 1))
    gbce = perturbed_metrics(
        model, params, {}, None, ranking, eps=[0.0], ks=(5,), window_loss=WindowLoss("gbce", 4, 0.5)
    )
    assert np.isfinite(bce.clean["adv_loss"]) and np.isfinite(gbce.clean["adv_loss"])
    assert bce.clean["adv_loss"] != gbce.clean["adv_loss"]


def test_a_ranking_without_windows_is_refused(split):
    model, params, _ = _victim(split, "sasrec")
    with pytest.raises(JaxrecError, match="ranks history windows"):
        perturbed_metrics(model, params, {}, None, split_ranking(split, "test", 8), eps=[0.1], ks=(5,))


def test_the_study_takes_sequence_victims_and_refuses_their_data_noise(split):
    cfg = Config(
        data=dataclasses.replace(DataConfig(), split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN),
        train=TrainConfig(epochs=1, batch_size=8, loss="ce"),
        eval=EvalConfig(ks=(5,)),
        robustness=RobustnessConfig(methods=("fgm",), eps=(0.5,), data_kinds=(), plot_metric="ndcg@5"),
    )
    plan = study.check(cfg, split=split)
    assert [label for label, _ in plan.victims] == [cfg.name] and plan.split_of(cfg) is split
    noisy = dataclasses.replace(cfg, robustness=dataclasses.replace(cfg.robustness, data_kinds=("drop",)))
    with pytest.raises(JaxrecError, match=r"robustness.data_kinds: retraining on noisy data is not available"):
        study.check(noisy, split=split)
