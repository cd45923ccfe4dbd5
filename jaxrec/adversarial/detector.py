"""The discriminator as a fake-user detector.

A trained D scores users; ``suspicion = 1 - D(x)`` ranks injected fake users (GAN or
simple-attack profiles) above real ones. Reported figures:

* ``auc`` -- ROC-AUC of the suspicion over a labelled mix (fake = positive), the Mann-Whitney
  statistic with ties counted one half;
* ``precision`` / ``recall`` / ``fpr`` at a threshold chosen **without the labels**: the
  ``1 - target_fpr`` quantile of the suspicion of clean users held out of D's training (a
  calibration set disjoint from the evaluated real users), i.e. at most ``target_fpr`` of clean
  users are flagged there.
"""

from __future__ import annotations

import numpy as np

from jaxrec.errors import JaxrecError


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC of ``scores [N]`` for binary ``labels [N]`` (1 = positive): the probability that
    a random positive scores above a random negative, ties counting 1/2 (average ranks)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise JaxrecError(f"roc_auc needs both classes, got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, np.float64)
    sorted_s = s[order]
    # average rank (1-based) over ties
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def threshold_at_fpr(clean_scores: np.ndarray, target_fpr: float = 0.05) -> float:
    """The suspicion threshold flagging at most ``target_fpr`` of ``clean_scores`` (``score >
    threshold`` is flagged): their ``1 - target_fpr`` quantile (higher interpolation)."""
    if not 0.0 < target_fpr < 1.0:
        raise JaxrecError(f"the target false-positive rate must be in (0, 1), got {target_fpr}")
    c = np.asarray(clean_scores, np.float64)
    if c.size == 0:
        raise JaxrecError("detector: no held-out clean users to set the threshold on")
    return float(np.quantile(c, 1.0 - target_fpr, method="higher"))


def detection_report(
    fake_scores: np.ndarray,
    real_scores: np.ndarray,
    clean_scores: np.ndarray,
    target_fpr: float = 0.05,
) -> dict[str, float]:
    """Detector figures from suspicion scores (higher = more likely fake).

    Args:
      fake_scores: ``[N]`` injected fake users; real_scores: ``[M]`` real users in the mix;
      clean_scores: ``[C]`` clean users held out of D's training, used only for the threshold.
    Returns ``auc``, ``threshold``, ``precision`` (0 when nothing is flagged), ``recall``,
    ``fpr`` (on the evaluated real users) and ``flagged`` (count).
    """
    fake_scores = np.asarray(fake_scores, np.float64)
    real_scores = np.asarray(real_scores, np.float64)
    scores = np.concatenate([fake_scores, real_scores])
    labels = np.concatenate([np.ones(fake_scores.size), np.zeros(real_scores.size)])
    thr = threshold_at_fpr(clean_scores, target_fpr)
    flagged = scores > thr
    tp = int(np.sum(flagged & (labels == 1)))
    fp = int(np.sum(flagged & (labels == 0)))
    return {
        "auc": roc_auc(scores, labels),
        "threshold": thr,
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(fake_scores.size, 1),
        "fpr": fp / max(real_scores.size, 1),
        "flagged": int(flagged.sum()),
    }
