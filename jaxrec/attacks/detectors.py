"""Unsupervised fake-user detectors over a rated user x item matrix, and how they are judged.

Every detector maps ``R [U, n_items]`` (ratings, 0 = not rated) to a *suspicion* ``[U]``
(higher = more likely fake):

* ``pca``    -- PCA-based user selection (Mehta & Nejdl, UMUAI 2009, PCA-VarSelect): z-score each
  user's ratings over the rated items (unrated = 0), treat users as variables, take the top
  ``components`` principal components of their covariance (the left singular vectors of the
  z-scored matrix) and score each user by its squared loadings on them. Shilling profiles are
  highly correlated with each other and load little on the main components: suspicion = minus
  the score.
* ``rdma``   -- Rating Deviation from Mean Agreement (Chirita et al., WIDM 2005): the mean over a
  user's rated items of ``|r_ui - mean_i| / count_i``.
* ``degsim`` -- degree of similarity with the top neighbours (Chirita et al. 2005): the mean
  Pearson correlation with the ``k`` most similar users (correlation of mean-centred rating rows,
  unrated = 0: the cosine of centred rows).

The GAN's discriminator D is a detector too (:func:`jaxrec.adversarial.detector`; the experiment
scores users with it). A detector flags users **without labels**: the threshold is the ``1 -
fpr`` quantile of the suspicion of a set of *trusted* real users (held out of every fitting,
:func:`flag`), so at most about ``fpr`` of clean users are dropped.
"""

from __future__ import annotations

import numpy as np

from jaxrec.adversarial.detector import detection_report, threshold_at_fpr
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

DETECTORS = ("d", "pca", "rdma", "degsim")  #: d = the GAN's discriminator


def rating_matrix(inter: Interactions) -> np.ndarray:
    """``[n_users, n_items]`` float32 ratings (1 for unrated data), 0 where a user has no row."""
    out = np.zeros((inter.n_users, inter.n_items), np.float32)
    out[inter.users, inter.items] = 1.0 if inter.ratings is None else inter.ratings
    return out


def _rated(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rated = r > 0
    n = np.maximum(rated.sum(1, keepdims=True), 1)
    return rated, n


def pca_suspicion(r: np.ndarray, components: int = 3) -> np.ndarray:
    """``[U]`` minus each user's squared loadings on the top ``components`` principal components
    of the users' z-scored rating rows (see the module docstring)."""
    rated, n = _rated(r)
    mean = r.sum(1, keepdims=True) / n
    std = np.sqrt(np.where(rated, (r - mean) ** 2, 0.0).sum(1, keepdims=True) / n)
    z = np.where(rated, (r - mean) / np.maximum(std, 1e-6), 0.0)
    if not 1 <= components <= min(z.shape):
        raise JaxrecError(f"pca detector: components must be in [1, {min(z.shape)}], got {components}")
    u, _, _ = np.linalg.svd(z.astype(np.float64), full_matrices=False)
    return -(u[:, :components] ** 2).sum(1)


def rdma(r: np.ndarray) -> np.ndarray:
    """``[U]`` mean over each user's rated items of ``|r_ui - mean_i| / count_i`` (0 for users
    without ratings)."""
    rated = r > 0
    count = rated.sum(0)
    item_mean = r.sum(0) / np.maximum(count, 1)
    dev = np.where(rated, np.abs(r - item_mean) / np.maximum(count, 1), 0.0)
    return dev.sum(1) / np.maximum(rated.sum(1), 1)


def degsim(r: np.ndarray, k: int = 25) -> np.ndarray:
    """``[U]`` mean Pearson correlation (centred rating rows, unrated = 0) with the ``k`` most
    similar other users."""
    rated, n = _rated(r)
    if not 1 <= k < r.shape[0]:
        raise JaxrecError(f"degsim detector: k must be in [1, {r.shape[0] - 1}], got {k}")
    c = np.where(rated, r - r.sum(1, keepdims=True) / n, 0.0)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    sim = c @ c.T
    np.fill_diagonal(sim, -np.inf)
    return -np.sort(-sim, axis=1)[:, :k].mean(1)


def suspicion(name: str, r: np.ndarray, components: int = 3, k: int = 25) -> np.ndarray:
    """The suspicion ``[U]`` of a statistical detector ``name`` (``pca``, ``rdma``, ``degsim``)."""
    if name == "pca":
        return pca_suspicion(r, components)
    if name == "rdma":
        return rdma(r)
    if name == "degsim":
        return degsim(r, k)
    raise JaxrecError(f"unknown statistical detector {name!r}; choose pca, rdma or degsim")


def flag(scores: np.ndarray, users: np.ndarray, trusted: np.ndarray, fpr: float) -> np.ndarray:
    """The ``users`` whose suspicion ``scores[users]`` exceeds the threshold set on the
    ``trusted`` users (:func:`~jaxrec.adversarial.detector.threshold_at_fpr`); trusted users are
    never flagged."""
    thr = threshold_at_fpr(scores[trusted], fpr)
    cand = np.setdiff1d(users, trusted)
    return cand[scores[cand] > thr]


def judge(scores: np.ndarray, fake: np.ndarray, real: np.ndarray, trusted: np.ndarray, fpr: float) -> dict:
    """Detection precision / recall / ROC-AUC of ``scores [U]`` with the fake users ``fake`` and
    the real, untrusted users ``real`` (the threshold from the ``trusted`` ones)."""
    real = np.setdiff1d(real, trusted)
    return detection_report(scores[fake], scores[real], scores[trusted], fpr)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of every threshold of ``scores`` (labels 1 = fake), from (0, 0) to (1, 1)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    y = np.asarray(labels, bool)[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]
