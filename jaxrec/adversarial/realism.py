"""How real do injected fake users look? Figures comparing fake rows with held-out real users.

All inputs are binary user matrices ``[N, n_items]`` (as injected, see
:mod:`jaxrec.attacks.profiles`); the real side should be users the generator never trained on.

* ``popularity_jsd`` -- Jensen-Shannon divergence (base 2, in [0, 1]) between the item-popularity
  distributions of the two groups (interaction counts per item, normalised);
* ``length_ks`` / ``length_mean_diff`` -- two-sample Kolmogorov-Smirnov statistic and absolute
  mean difference of the profile lengths;
* ``nn_cosine`` -- mean over fake users of the cosine similarity to their nearest real user
  (and ``nn_cosine_real``: the same figure for real users against the *other* real users, the
  reference value a realistic fake should reach).
"""

from __future__ import annotations

import numpy as np


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JS divergence (base 2) of two non-negative vectors, each normalised to sum 1."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p = p / max(p.sum(), 1e-300)
    q = q / max(q.sum(), 1e-300)
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup_x |F_a(x) - F_b(x)|``."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def nearest_cosine(x: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """``[N]`` cosine similarity of each row of ``x [N, n]`` to its nearest row of ``ref [M, n]``
    (``exclude_self``: ``x`` is ``ref`` and a row's own match does not count)."""
    x = np.asarray(x, np.float32)
    ref = np.asarray(ref, np.float32)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rn = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    sim = xn @ rn.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    return sim.max(axis=1)


def realism_report(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Realism figures of ``fake [N, n_items]`` against held-out ``real [M, n_items]`` (0/1)."""
    fake = np.asarray(fake, np.float32)
    real = np.asarray(real, np.float32)
    lf, lr = fake.sum(1), real.sum(1)
    return {
        "popularity_jsd": jensen_shannon(fake.sum(0), real.sum(0)),
        "length_ks": ks_statistic(lf, lr),
        "length_mean_diff": float(abs(lf.mean() - lr.mean())),
        "fake_length_mean": float(lf.mean()),
        "nn_cosine": float(nearest_cosine(fake, real).mean()),
        "nn_cosine_real": float(nearest_cosine(real, real, exclude_self=True).mean()) if len(real) > 1 else float("nan"),
    }
