"""The statistical detectors against hand computations, and label-free flagging."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.attacks import detectors as det
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
    from jaxrec.adversarial.detector import roc_auc

    rng = np.random.default_rng(1)
    taste = rng.normal(size=(80, 2)) @ rng.normal(size=(2, 60))
    real = np.where(rng.random((80, 60)) < 0.5, np.clip(np.round(3 + taste), 1, 5), 0)
    fakes = np.where(rng.random((8, 60)) < 0.5, rng.integers(1, 6, (8, 60)), 0)
    fakes[:, 0] = 5
    r = np.concatenate([real, fakes]).astype(np.float32)
    assert roc_auc(det.pca_suspicion(r, 2), np.r_[np.zeros(80), np.ones(8)]) > 0.9


def test_degsim_singles_out_a_block_of_near_identical_fake_profiles():
    from jaxrec.adversarial.detector import roc_auc

    rng = np.random.default_rng(1)
    real = np.where(rng.random((80, 60)) < 0.15, rng.integers(1, 6, (80, 60)), 0)
    proto = np.where(rng.random(60) < 0.3, rng.integers(1, 6, 60), 0)
    fakes = np.where(rng.random((8, 60)) < 0.9, proto, 0)
    fakes[:, 0] = 5
    r = np.concatenate([real, fakes]).astype(np.float32)
    assert roc_auc(det.degsim(r, 5), np.r_[np.zeros(80), np.ones(8)]) > 0.9


def test_flag_uses_only_the_trusted_users_threshold_and_never_flags_them():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.05, 0.97])
    users = np.arange(7)
    trusted = np.array([0, 1, 2])  # threshold: their max at fpr -> 0.3
    np.testing.assert_array_equal(det.flag(scores, users, trusted, 0.05), [3, 4, 6])
    figures = det.judge(scores, np.array([4, 6]), np.array([0, 1, 2, 3, 5]), trusted, 0.05)
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
