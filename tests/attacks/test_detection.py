"""Detection: the statistical detectors against hand computations, the one ROC-AUC (numpy and jax)
against pairwise counts, label-free thresholds and flagging."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks import detection as det
from jaxrec.errors import JaxrecError


def test_rdma_hand_example():
    # item 0: ratings 5, 3 (mean 4, count 2); item 1: rating 2 (mean 2, count 1)
    r = np.array([[5, 2], [3, 0], [0, 0]], np.float32)
    got = det.rdma(r)
    np.testing.assert_allclose(got, [(abs(5 - 4) / 2 + abs(2 - 2) / 1) / 2, abs(3 - 4) / 2, 0.0])


def test_degsim_is_the_mean_correlation_with_the_top_k_neighbours():
    rng = np.random.default_rng(0)
    r = np.where(rng.random((6, 10)) < 0.6, rng.integers(1, 6, (6, 10)), 0).astype(np.float32)
    got = det.degsim(r, k=2)
    for u in range(6):
        rated = r[u] > 0
        sims = []
        for v in range(6):
            if v == u:
                continue
            a = np.where(r[u] > 0, r[u] - r[u][rated].mean(), 0.0)
            b = np.where(r[v] > 0, r[v] - r[v][r[v] > 0].mean(), 0.0)
            sims.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        assert got[u] == pytest.approx(np.mean(sorted(sims)[-2:]), abs=1e-5)


def test_pca_selects_fakes_that_load_little_on_the_main_components():
    """Real users follow a low-rank taste structure; random-filler fakes do not, so they load
    little on the top principal components (Mehta & Nejdl 2009): ROC-AUC near 1."""
    rng = np.random.default_rng(1)
    taste = rng.normal(size=(80, 2)) @ rng.normal(size=(2, 60))
    real = np.where(rng.random((80, 60)) < 0.5, np.clip(np.round(3 + taste), 1, 5), 0)
    fakes = np.where(rng.random((8, 60)) < 0.5, rng.integers(1, 6, (8, 60)), 0)
    fakes[:, 0] = 5
    r = np.concatenate([real, fakes]).astype(np.float32)
    s = det.pca_suspicion(r, 2)
    assert det.roc_auc(s[80:], s[:80]) > 0.9


def test_degsim_singles_out_a_block_of_near_identical_fake_profiles():
    rng = np.random.default_rng(1)
    real = np.where(rng.random((80, 60)) < 0.15, rng.integers(1, 6, (80, 60)), 0)
    proto = np.where(rng.random(60) < 0.3, rng.integers(1, 6, 60), 0)
    fakes = np.where(rng.random((8, 60)) < 0.9, proto, 0)
    fakes[:, 0] = 5
    r = np.concatenate([real, fakes]).astype(np.float32)
    s = det.degsim(r, 5)
    assert det.roc_auc(s[80:], s[:80]) > 0.9


def test_flag_uses_only_the_trusted_users_threshold_and_never_flags_them():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.05, 0.97])
    users = np.arange(7)
    trusted = np.array([0, 1, 2])  # threshold: their max at fpr -> 0.3
    np.testing.assert_array_equal(det.flag(scores, users, trusted, 0.05), [3, 4, 6])
    figures = det.user_detection_report(scores, np.array([4, 6]), np.array([0, 1, 2, 3, 5]), trusted, 0.05)
    assert figures["precision"] == pytest.approx(2 / 3) and figures["recall"] == 1.0
    assert figures["auc"] == pytest.approx(1.0)  # fakes 4, 6 above the untrusted real users 3, 5


def test_roc_curve_runs_from_the_origin_to_one():
    fpr, tpr = det.roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])


def test_bad_detector_settings_are_clear_errors():
    r = np.ones((4, 3), np.float32)
    with pytest.raises(JaxrecError, match="components must be in"):
        det.pca_suspicion(r, 5)
    with pytest.raises(JaxrecError, match="k must be in"):
        det.degsim(r, 4)
    with pytest.raises(JaxrecError, match="unknown statistical detector"):
        det.suspicion("lof", r)


def test_auc_matches_hand_computed_example():
    # positives 0.9, 0.4, 0.6; negatives 0.1, 0.4, 0.5, 0.8.
    # pairs positive > negative: 0.9 beats all 4; 0.4 beats 0.1, ties 0.4 (1/2); 0.6 beats 0.1, 0.4, 0.5
    # -> (4 + 1.5 + 3) / 12
    fake, real = np.array([0.9, 0.4, 0.6]), np.array([0.1, 0.4, 0.5, 0.8])
    assert det.roc_auc(fake, real) == pytest.approx(8.5 / 12)
    assert det.roc_auc(-fake, -real) == pytest.approx(1 - 8.5 / 12)
    # the jax path (traced inside the GAN's model selection) gives the same number
    assert float(jax.jit(det.roc_auc)(jnp.asarray(fake), jnp.asarray(real))) == pytest.approx(8.5 / 12)
    with pytest.raises(JaxrecError, match="both classes"):
        det.roc_auc(fake, np.zeros(0))


def test_auc_equals_the_pairwise_count_with_many_ties():
    rng = np.random.default_rng(0)
    fake, real = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 70).astype(float)
    diff = fake[:, None] - real[None, :]
    pairwise = np.mean((diff > 0) + 0.5 * (diff == 0))
    assert det.roc_auc(fake, real) == pytest.approx(pairwise, abs=1e-12)
    assert float(det.roc_auc(jnp.asarray(fake), jnp.asarray(real))) == pytest.approx(pairwise, abs=1e-6)


def test_threshold_from_clean_users_and_precision_recall():
    clean = np.arange(100) / 100.0  # 0.00 .. 0.99
    thr = det.threshold_at_fpr(clean, 0.05)
    assert np.mean(clean > thr) <= 0.05
    rep = det.detection_report(
        fake_scores=np.array([0.99, 0.97, 0.5]),
        real_scores=np.array([0.1, 0.2, 0.98, 0.3]),
        clean_scores=clean,
        target_fpr=0.05,
    )
    # threshold 0.95: flagged fakes 0.99, 0.97 and real 0.98
    assert rep["threshold"] == pytest.approx(0.95)
    assert rep["precision"] == pytest.approx(2 / 3) and rep["recall"] == pytest.approx(2 / 3)
    assert rep["fpr"] == pytest.approx(1 / 4) and rep["flagged"] == 3
    with pytest.raises(JaxrecError, match="false-positive rate must be in"):
        det.threshold_at_fpr(clean, 0.0)
