"""A fresh detector: how separable are fake user profiles from real ones, judged after the fact?

The GAN's own discriminator co-evolved with the generator, so its scores say little about how
realistic the final fakes are. Here a *new* classifier -- L2-regularised logistic regression on
the profile rows plus a few summary features -- is trained to tell held-out real users from fake
users, and scored **out of fold** (stratified k-fold): ROC-AUC 0.5 means indistinguishable, 1.0
trivially separable.

The summary features follow the generic attack-detection attributes of Chirita et al.
("Preventing shilling attacks in online recommender systems", WIDM 2005) and Burke et al.
("Classification features for attack detection in collaborative recommender systems", KDD 2006):
profile length (Burke's *LengthVar*), the popularity of the rated items (filler items of simple
attacks are drawn without regard to popularity) and the spread of the rating values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec.attacks.detection import roc_auc
from jaxrec.errors import JaxrecError

FEATURE_NAMES = ("log_length", "pop_mean", "pop_std", "value_mean", "value_std")


def profile_features(x, popularity):
    """``[N, 5]`` summary features (:data:`FEATURE_NAMES`) of profiles ``x [N, n_items]`` (jax).

    ``x``: 0 = not rated; values 0/1 or ratings scaled to (0, 1]. ``popularity [n_items]``: item
    counts. Per row: ``log1p(length)``; mean and (population) std of ``log1p(popularity)`` over
    the row's items; mean and std of its nonzero values (1 and 0 for a 0/1 row). An empty row
    gives zeros, never NaN.
    """
    x = jnp.asarray(x, jnp.float32)
    pop = jnp.log1p(jnp.asarray(popularity, jnp.float32))
    if x.ndim != 2 or pop.shape != (x.shape[1],):
        raise JaxrecError(
            f"profile_features needs x [N, n_items] and popularity [n_items], got {x.shape} and {pop.shape}"
        )
    rated = (x != 0).astype(jnp.float32)
    n = rated.sum(1)
    d = jnp.maximum(n, 1.0)  # empty rows: every sum below is 0, so the features are 0

    def mean_std(v):
        m = (rated * v).sum(1) / d
        var = (rated * (v - m[:, None]) ** 2).sum(1) / d
        return m, jnp.sqrt(jnp.maximum(var, 0.0))

    pm, ps = mean_std(jnp.broadcast_to(pop, x.shape))
    vm, vs = mean_std(x)
    return jnp.stack([jnp.log1p(n), pm, ps, vm, vs], axis=1)


@functools.partial(jax.jit, static_argnames=("steps", "lr"))
def _fit_scores(x: jax.Array, y: jax.Array, train: jax.Array, l2: float, steps: int, lr: float) -> jax.Array:
    """Logistic-regression scores ``[K, N]`` of all rows ``x [N, F]`` (labels ``y [N]``) for ``K``
    folds at once, each trained on the rows of its 0/1 mask ``train [K, N]`` (full batch, Adam):
    features standardised with the training rows' mean/std, each class weighing half the loss,
    ``l2 / 2 * |w|^2`` on the weights (not the bias). Fixed shapes: every fold sees all N rows."""

    def one(mask):
        cnt = mask.sum()
        mu = (mask[:, None] * x).sum(0) / cnt
        sd = jnp.sqrt((mask[:, None] * (x - mu) ** 2).sum(0) / cnt)
        z = (x - mu) / jnp.where(sd > 1e-8, sd, 1.0)
        pos, neg = mask * y, mask * (1.0 - y)
        wt = 0.5 * pos / jnp.maximum(pos.sum(), 1.0) + 0.5 * neg / jnp.maximum(neg.sum(), 1.0)

        def loss(p):
            logit = z @ p["w"] + p["b"]
            return jnp.sum(wt * optax.sigmoid_binary_cross_entropy(logit, y)) + 0.5 * l2 * jnp.sum(p["w"] ** 2)

        opt = optax.adam(lr)
        params = {"w": jnp.zeros(x.shape[1], x.dtype), "b": jnp.zeros((), x.dtype)}

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return z @ params["w"] + params["b"]

    return jax.vmap(one)(train)


def fold_masks(n_real: int, n_fake: int, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified folds of ``n_real`` real rows then ``n_fake`` fake rows, drawn from ``seed``:
    ``(fold [M + N] int, train [folds, M + N] 0/1)`` (fold k trains on the rows outside it)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(n_real + n_fake, np.int64)
    for idx in (np.arange(n_real), n_real + np.arange(n_fake)):  # stratified: per class
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    return fold, (fold[None, :] != np.arange(folds)[:, None]).astype(np.float32)


def out_of_fold_scores(real, fake, fold, train, popularity=None, l2: float = 1e-2, steps: int = 300, lr: float = 0.05):
    """``[M + N]`` each row's score from the fold model that did not train on it: the logistic
    regression of :func:`fresh_detector` on the rows of ``real [M, n]`` and ``fake [N, n]``, all
    folds at once (``fold`` and ``train`` from :func:`fold_masks`). Jax, jittable (``steps`` and
    ``lr`` static); the GAN's model selection calls it on device."""
    x = jnp.concatenate([jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)])
    y = jnp.concatenate([jnp.zeros(real.shape[0]), jnp.ones(fake.shape[0])])
    pop = (x != 0).sum(0) if popularity is None else popularity
    feats = jnp.concatenate([x, profile_features(x, pop)], axis=1)
    scores = _fit_scores(feats, y, jnp.asarray(train), l2, steps=steps, lr=lr)
    return scores[jnp.asarray(fold), jnp.arange(x.shape[0])]


def fresh_detector(
    real: np.ndarray,
    fake: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-2,
    steps: int = 300,
    lr: float = 0.05,
    popularity: np.ndarray | None = None,
) -> dict:
    """Out-of-fold separability of ``fake [N, n_items]`` from held-out ``real [M, n_items]``.

    Stratified ``folds``-fold cross-validated L2 logistic regression (fake = positive) on the
    profile rows concatenated with :func:`profile_features` (``popularity [n_items]`` defaults to
    the item counts of real and fake pooled, which uses no labels). All folds train at once
    (``vmap`` of a jitted ``lax.scan`` of ``steps`` Adam steps at rate ``lr``); the split is drawn
    from ``seed``, so a seed gives one result.

    Returns ``{"auc": pooled out-of-fold ROC-AUC, "auc_folds": [K per-fold AUCs], "n_real": M,
    "n_fake": N}``.
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if real.ndim != 2 or fake.ndim != 2:
        raise JaxrecError(
            f"fresh_detector needs 2-D [users, items] matrices, got real {real.shape} and fake {fake.shape}"
        )
    if real.shape[1] != fake.shape[1]:
        raise JaxrecError(
            f"real and fake profiles must have the same number of items, got {real.shape[1]} and {fake.shape[1]}"
        )
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise JaxrecError(f"fresh_detector needs at least 2 folds, got {folds}")
    if min(len(real), len(fake)) < folds:
        raise JaxrecError(
            f"{folds}-fold cross-validation needs at least {folds} rows per class, "
            f"got {len(real)} real and {len(fake)} fake"
        )
    if steps < 1 or lr <= 0 or l2 < 0:
        raise JaxrecError(f"fresh_detector needs steps >= 1, lr > 0 and l2 >= 0, got {steps}, {lr}, {l2}")
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    fold, train = fold_masks(len(real), len(fake), folds, seed)
    oof = np.asarray(
        out_of_fold_scores(real, fake, fold, train, popularity, float(l2), int(steps), float(lr)), np.float64
    )
    return {
        "auc": roc_auc(oof[y == 1], oof[y == 0]),
        "auc_folds": [roc_auc(oof[(fold == k) & (y == 1)], oof[(fold == k) & (y == 0)]) for k in range(folds)],
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
    }
