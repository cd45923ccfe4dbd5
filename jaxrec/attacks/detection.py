"""Detecting fake users: every detector's suspicion, label-free thresholds and how a detector is
judged (ROC-AUC, precision, recall, false-positive rate).

A detector maps users to a *suspicion* ``[U]`` (higher = more likely fake). The statistical ones
read a rated user x item matrix ``R [U, n_items]`` (ratings, 0 = not rated;
:meth:`jaxrec.data.Interactions.dense`):

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
* ``repeats`` -- the share of a user's events that repeat an item (sequences only): ``1 -
  distinct / events``. Fake sequences with the targets interleaved repeat them; real
  sequences repeat rarely (MovieLens never).
* ``d``      -- the GAN's discriminator: suspicion ``1 - D(x)`` (the experiment layer scores users
  with :func:`jaxrec.adversarial.gan_training.d_prob`).

On the events of sequence data (:data:`SEQUENCE_DETECTORS`, ``implicit``), ``R`` holds event
counts and every item is a variable of a user's row: a binary row z-scored over its rated items
only would be all zero, so ``pca`` standardises and ``degsim`` centres over all items (Pearson
correlation of the full rows).

A fresh classifier trained after the fact is a detector too (:mod:`jaxrec.attacks.fresh_detector`).

A detector flags users **without labels**: the threshold is the ``1 - fpr`` quantile of the
suspicion of clean users held out of every fitting (*trusted* users, :func:`threshold_at_fpr`,
:func:`flag`), so at most about ``fpr`` of clean users are flagged. :func:`detection_report`
judges it with the labels: ROC-AUC (:func:`roc_auc`, the one AUC of the package), precision,
recall and the false-positive rate measured on the evaluated real users.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.errors import JaxrecError

DETECTORS = ("d", "pca", "rdma", "degsim", "repeats")  #: every detector by name (d = the GAN's discriminator)
RATED_DETECTORS = ("d", "pca", "rdma", "degsim")  #: those that read ratings (``attack.detectors``' default)
STATISTICAL = ("pca", "rdma", "degsim")  #: the detectors :func:`suspicion` computes from ratings
SEQUENCE_DETECTORS = ("pca", "degsim", "repeats")  #: those that read a sequence's event counts


def roc_auc(fake_scores, real_scores):
    """ROC-AUC of suspicion scores: the probability that a random fake user (``fake_scores [N]``)
    scores above a random real one (``real_scores [M]``), ties counting 1/2 (the Mann-Whitney
    statistic).

    numpy arrays in: a float (float64 arithmetic); jax arrays in (e.g. traced, inside the GAN's
    model selection): a jax scalar. ``O((N + M) log M)`` with a sort, exact with ties."""
    xp = jnp if isinstance(fake_scores, jax.Array) or isinstance(real_scores, jax.Array) else np
    fake, real = xp.ravel(xp.asarray(fake_scores)), xp.sort(xp.ravel(xp.asarray(real_scores)))
    if fake.size == 0 or real.size == 0:
        raise JaxrecError(f"roc_auc needs both classes, got {fake.size} fake and {real.size} real scores")
    below = xp.searchsorted(real, fake, side="left")
    upto = xp.searchsorted(real, fake, side="right")
    auc = xp.mean((below + upto) / 2.0) / real.size
    return auc if xp is jnp else float(auc)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of every threshold of ``scores`` (labels 1 = fake), from (0, 0) to (1, 1)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    y = np.asarray(labels, bool)[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def threshold_at_fpr(clean_scores: np.ndarray, target_fpr: float = 0.05) -> float:
    """The suspicion threshold flagging at most ``target_fpr`` of ``clean_scores`` (``score >
    threshold`` is flagged): their ``1 - target_fpr`` quantile (higher interpolation)."""
    if not 0.0 < target_fpr < 1.0:
        raise JaxrecError(f"the target false-positive rate must be in (0, 1), got {target_fpr}")
    c = np.asarray(clean_scores, np.float64)
    if c.size == 0:
        raise JaxrecError("detector: no held-out clean users to set the threshold on")
    return float(np.quantile(c, 1.0 - target_fpr, method="higher"))


def flag(scores: np.ndarray, users: np.ndarray, trusted: np.ndarray, fpr: float) -> np.ndarray:
    """The ``users`` whose suspicion ``scores[users]`` exceeds the threshold set on the
    ``trusted`` users (:func:`threshold_at_fpr`); trusted users are never flagged."""
    thr = threshold_at_fpr(scores[trusted], fpr)
    cand = np.setdiff1d(users, trusted)
    return cand[scores[cand] > thr]


def detection_report(
    fake_scores: np.ndarray, real_scores: np.ndarray, clean_scores: np.ndarray, target_fpr: float = 0.05
) -> dict[str, float]:
    """A detector judged from suspicion scores (higher = more likely fake).

    Args:
      fake_scores: ``[N]`` injected fake users; real_scores: ``[M]`` real users in the mix;
      clean_scores: ``[C]`` clean users held out of the detector's fitting, used only for the
        threshold (:func:`threshold_at_fpr`).
    Returns ``auc``, ``threshold``, ``precision`` (0 when nothing is flagged), ``recall``,
    ``fpr`` (measured on the evaluated real users) and ``flagged`` (count).
    """
    fake_scores = np.asarray(fake_scores, np.float64)
    real_scores = np.asarray(real_scores, np.float64)
    thr = threshold_at_fpr(clean_scores, target_fpr)
    tp, fp = int(np.sum(fake_scores > thr)), int(np.sum(real_scores > thr))
    return {
        "auc": roc_auc(fake_scores, real_scores),
        "threshold": thr,
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(fake_scores.size, 1),
        "fpr": fp / max(real_scores.size, 1),
        "flagged": tp + fp,
    }


def user_detection_report(
    scores: np.ndarray, fake: np.ndarray, real: np.ndarray, trusted: np.ndarray, fpr: float
) -> dict[str, float]:
    """:func:`detection_report` of per-user ``scores [U]`` with the fake users ``fake`` and the
    real users ``real`` (the ``trusted`` ones set the threshold and are left out of the mix)."""
    real = np.setdiff1d(real, trusted)
    return detection_report(scores[fake], scores[real], scores[trusted], fpr)


def _rated(r: np.ndarray, implicit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rated = np.ones(r.shape, bool) if implicit else r > 0
    n = np.maximum(rated.sum(1, keepdims=True), 1)
    return rated, n


def pca_suspicion(r: np.ndarray, components: int = 3, implicit: bool = False) -> np.ndarray:
    """``[U]`` minus each user's squared loadings on the top ``components`` principal components
    of the users' z-scored rating rows (``implicit``: event counts, z-scored over all items; see
    the module docstring)."""
    rated, n = _rated(r, implicit)
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


def degsim(r: np.ndarray, k: int = 25, implicit: bool = False) -> np.ndarray:
    """``[U]`` mean Pearson correlation (centred rating rows, unrated = 0; ``implicit``: event
    counts centred over all items) with the ``k`` most similar other users."""
    rated, n = _rated(r, implicit)
    if not 1 <= k < r.shape[0]:
        raise JaxrecError(f"degsim detector: k must be in [1, {r.shape[0] - 1}], got {k}")
    c = np.where(rated, r - r.sum(1, keepdims=True) / n, 0.0)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    sim = c @ c.T
    np.fill_diagonal(sim, -np.inf)
    return -np.sort(-sim, axis=1)[:, :k].mean(1)


def repeats(r: np.ndarray) -> np.ndarray:
    """``[U]`` the share of each user's events (``r``: event counts) that repeat an item."""
    events = r.sum(1)
    return 1.0 - (r > 0).sum(1) / np.maximum(events, 1)


def suspicion(name: str, r: np.ndarray, components: int = 3, k: int = 25, implicit: bool = False) -> np.ndarray:
    """The suspicion ``[U]`` of a statistical detector ``name`` (``pca``, ``rdma``, ``degsim``;
    ``implicit``: ``r`` holds a sequence's event counts, and ``repeats`` is one too)."""
    if implicit and name not in SEQUENCE_DETECTORS:
        raise JaxrecError(f"the {name} detector reads ratings; on sequences choose one of {list(SEQUENCE_DETECTORS)}")
    if not implicit and name == "repeats":
        raise JaxrecError("the repeats detector reads a sequence's event counts; on ratings choose pca, rdma or degsim")
    if name == "pca":
        return pca_suspicion(r, components, implicit)
    if name == "rdma":
        return rdma(r)
    if name == "degsim":
        return degsim(r, k, implicit)
    if name == "repeats":
        return repeats(r)
    raise JaxrecError(f"unknown statistical detector {name!r}; choose pca, rdma or degsim")
