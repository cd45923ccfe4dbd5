"""How real do injected fake users look? Figures comparing fake rows with held-out real users.

Inputs are user matrices ``[N, n_items]`` as injected (see :mod:`jaxrec.attacks.profiles`): 0/1,
or ratings (0 = not rated); every figure but ``rating_jsd`` reads only which items a user has. The
real side should be users the generator never trained on.

* ``popularity_jsd`` -- Jensen-Shannon divergence (base 2, in [0, 1]) between the item-popularity
  distributions of the two groups (interaction counts per item, normalised);
* ``length_ks`` / ``length_mean_diff`` -- two-sample Kolmogorov-Smirnov statistic and absolute
  mean difference of the profile lengths;
* ``nn_cosine`` -- mean over fake users of the cosine similarity to their nearest real user
  (and ``nn_cosine_real``: the same figure for real users against the *other* real users, the
  reference value a realistic fake should reach -- higher means copies of real users);
* ``diversity`` -- mean pairwise Jaccard similarity among the fake users (``diversity_real``:
  among the real ones); far above the real value means mode collapse (many near-identical fakes);
* ``rating_jsd`` (rated users) -- JS divergence of the two groups' histograms of rating values.

The figures are jax functions, so the GAN's model selection
(:func:`jaxrec.adversarial.gan_training.realism_validate`) computes :func:`realism_gap` on device
inside the training program; :func:`realism_report` gives them as floats.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def jensen_shannon(p, q) -> jnp.ndarray:
    """JS divergence (base 2) of two non-negative vectors, each normalised to sum 1."""
    p = jnp.asarray(p, jnp.float32)
    q = jnp.asarray(q, jnp.float32)
    p = p / jnp.maximum(p.sum(), 1e-30)
    q = q / jnp.maximum(q.sum(), 1e-30)
    m = 0.5 * (p + q)

    def kl(a, b):
        return jnp.sum(jnp.where(a > 0, a * jnp.log2(jnp.where(a > 0, a, 1.0) / jnp.where(a > 0, b, 1.0)), 0.0))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup_x |F_a(x) - F_b(x)|``."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def _presence(x) -> jnp.ndarray:
    return (jnp.asarray(x) > 0).astype(jnp.float32)


def nearest_cosine(x, ref, exclude_self: bool = False) -> jnp.ndarray:
    """``[N]`` cosine similarity of each row of ``x [N, n]`` to its nearest row of ``ref [M, n]``
    (``exclude_self``: ``x`` is ``ref`` and a row's own match does not count)."""
    x = jnp.asarray(x, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    xn = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rn = ref / jnp.maximum(jnp.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    sim = xn @ rn.T
    if exclude_self:
        sim = jnp.where(jnp.eye(sim.shape[0], sim.shape[1], dtype=bool), -jnp.inf, sim)
    return sim.max(axis=1)


def pairwise_jaccard(x) -> jnp.ndarray:
    """Mean Jaccard similarity ``|a ∩ b| / |a ∪ b|`` over all pairs of distinct rows of ``x [N, n]``
    (which items each row has; two empty rows count 0)."""
    b = _presence(x)
    n = b.shape[0]
    inter = b @ b.T
    size = b.sum(1)
    union = size[:, None] + size[None, :] - inter
    jac = jnp.where(union > 0, inter / jnp.maximum(union, 1.0), 0.0)
    off = 1.0 - jnp.eye(n)
    return jnp.sum(jac * off) / jnp.maximum(n * (n - 1), 1)


def realism_gap(fake, real, nn_cosine_real, diversity_real, rating_counts=None, real_rating_counts=None) -> dict:
    """The model-selection criterion (smaller = more realistic), as jax scalars.

    ``gap = popularity_jsd + |nn_cosine - nn_cosine_real| + |diversity - diversity_real|`` of
    ``fake [N, n]`` against ``real [M, n]``; the two reference values are the real users' own
    figures. Rated users add ``rating_jsd``, the JS divergence of the rating histograms
    ``rating_counts [K]`` (the fakes') and ``real_rating_counts [K]``. (Lengths are not in it:
    the GAN copies them from real users.)
    """
    f, r = _presence(fake), _presence(real)
    jsd = jensen_shannon(f.sum(0), r.sum(0))
    nn = jnp.mean(nearest_cosine(f, r))
    div = pairwise_jaccard(f)
    gap = jsd + jnp.abs(nn - nn_cosine_real) + jnp.abs(div - diversity_real)
    out = {"popularity_jsd": jsd, "nn_cosine": nn, "diversity": div}
    if rating_counts is not None:
        out["rating_jsd"] = jensen_shannon(rating_counts, real_rating_counts)
        gap = gap + out["rating_jsd"]
    return {"gap": gap, **out}


def rating_counts(x, levels: int) -> jnp.ndarray:
    """``[levels]`` how often each rating ``1..levels`` occurs in the ratings matrix ``x`` (0 = none)."""
    x = jnp.asarray(x)
    return jnp.stack([jnp.sum(x == k) for k in range(1, levels + 1)]).astype(jnp.float32)


def realism_report(fake, real, levels: int = 0) -> dict[str, float]:
    """Realism figures of ``fake [N, n_items]`` against held-out ``real [M, n_items]`` (the module
    docstring), :func:`realism_gap` (``gap``) among them; ``levels = K`` adds ``rating_jsd``
    (both matrices then hold ratings ``1..K``)."""
    fake = np.asarray(fake, np.float32)
    real = np.asarray(real, np.float32)
    lf, lr = (fake > 0).sum(1), (real > 0).sum(1)
    pr = _presence(real)
    nn_real = jnp.mean(nearest_cosine(pr, pr, exclude_self=True)) if len(real) > 1 else jnp.nan
    div_real = pairwise_jaccard(pr)
    counts = (rating_counts(fake, levels), rating_counts(real, levels)) if levels else (None, None)
    gap = realism_gap(fake, real, nn_real, div_real, *counts)
    return {
        **{k: float(v) for k, v in gap.items()},
        "length_ks": ks_statistic(lf, lr),
        "length_mean_diff": float(abs(lf.mean() - lr.mean())),
        "fake_length_mean": float(lf.mean()),
        "nn_cosine_real": float(nn_real),
        "diversity_real": float(div_real),
    }
