"""GAN training over user vectors on the shared engine: the real users as data, an epoch as one
``lax.scan`` of GAN steps (:mod:`jaxrec.adversarial.gan_steps`) over shuffled user batches, the
fit through the one engine and fit loop, and G/D evaluation helpers.

Training goes through the one engine and fit loop of every model (:func:`fit_gan`:
:mod:`jaxrec.train.engine`, :func:`jaxrec.train.loop.fit`), with the one batching
(:func:`jaxrec.train.steps.shuffled_rows`) and the one checkpointer; a mesh splits the user
batches over its ``data`` axis.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.adversarial import realism
from jaxrec.adversarial.gan_steps import (  # noqa: F401  (re-exported: the GAN's public names)
    _GUMBEL,
    _SHUFFLE,
    GANBatch,
    GANSample,
    GANSpec,
    GANState,
    create_gan_state,
    d_loss_terms,
    d_view,
    fake_users,
    g_adversarial_loss,
    gan_adam,
    make_d_step,
    make_g_step,
    make_gan_step,
    nonpurchased_sample,
    sample_noise,
    users_from_noise,
)
from jaxrec.attacks.detection import roc_auc
from jaxrec.attacks.discrete import top_l_mask
from jaxrec.attacks.fresh_detector import fold_masks, out_of_fold_scores
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.train.engine import make_engine
from jaxrec.train.loop import fit, member_record
from jaxrec.train.parallel import constrain_batches
from jaxrec.train.state import member, stack
from jaxrec.train.steps import shuffled_rows


# ------------------------------------------------------------------------------------------------
@chex.dataclass(frozen=True)
class GANData:
    """The real users the GAN trains on, as an array pytree.

    Attributes:
      real: ``[n_users, n_items]`` float32 user vectors (the rows D learns to call real; for
        CFGAN also the conditions): 0/1, or ``rating / K`` for a rated GAN (0 = not rated).
    """

    real: jax.Array

    @property
    def n_users(self) -> int:
        return self.real.shape[0]


def rating_levels(inter: Interactions, required: bool = True) -> int:
    """``K`` of integer ratings ``1..K`` (what a rated GAN writes). Other data: a clear error when
    ``required``, else 0 (no rating figures)."""
    r = inter.ratings
    if r is None or len(r) == 0:
        if not required:
            return 0
        raise JaxrecError(f"{inter.source}: a rated GAN (gan.rated) needs rated interactions")
    if not (np.all(r == np.round(r)) and r.min() >= 1):
        if not required:
            return 0
        raise JaxrecError(
            f"{inter.source}: a rated GAN needs integer ratings 1..K, got values in [{r.min()}, {r.max()}]"
        )
    return int(r.max())


def gan_data(real: np.ndarray | jax.Array, levels: int = 0) -> GANData:
    """:class:`GANData` from a ``[n_users, n_items]`` matrix (validated): 0/1, or ratings ``/ K``
    (``levels = K``)."""
    real = np.asarray(real, np.float32)
    if real.ndim != 2 or real.shape[0] < 1:
        raise JaxrecError(f"gan: real users must be a non-empty [n_users, n_items] matrix, got {real.shape}")
    if not levels and not np.all((real == 0) | (real == 1)):
        raise JaxrecError("gan: real user vectors must be 0/1 interaction vectors")
    if levels and not np.allclose(real * levels, np.round(real * levels), atol=1e-4):
        raise JaxrecError(f"gan: rated user vectors must hold rating / {levels} (ratings 1..{levels}) or 0")
    return GANData(real=jnp.asarray(real))


def user_batches(key: jax.Array, data: GANData, batch_size: int) -> GANBatch:
    """This epoch's batches ``[n_batches, B, n_items]`` / ``[n_batches, B]``: users shuffled by the
    one batching of every epoch (:func:`jaxrec.train.steps.shuffled_rows`), the last batch
    padded with mask 0 (fixed shapes, one compilation)."""
    n = data.n_users
    idx, mask = shuffled_rows(key, n, math.ceil(n / batch_size) * batch_size, batch_size)
    return GANBatch(real=data.real[jnp.minimum(idx, n - 1)], mask=mask)


def make_gan_epoch(spec: GANSpec, batch_size: int, *, step: Callable | None = None) -> Callable:
    """``epoch(state, data) -> (state, metrics)``: one ``lax.scan`` of GAN steps over all users.

    ``metrics`` holds ``[n_batches]`` arrays of every per-step metric. ``step`` defaults to
    :func:`make_gan_step`'s (pass a wrapped, e.g. sharded, step of the same signature).
    """
    if batch_size < 1:
        raise JaxrecError(f"GAN batch size must be >= 1, got {batch_size}")
    step = make_gan_step(spec) if step is None else step

    def epoch(state: GANState, data: GANData):
        b = min(batch_size, data.n_users)
        batches = user_batches(jax.random.fold_in(jax.random.fold_in(state.key, state.g.step), _SHUFFLE), data, b)
        return jax.lax.scan(step, state, constrain_batches(batches))  # split over 'data' under a mesh

    return epoch


# ------------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=0)
def sample(spec: GANSpec, g_params, key: jax.Array, lengths: jax.Array) -> GANSample:
    """G's users for profiles of ``lengths [n]`` (:class:`GANSample`, ``[n, n_items]`` each) for
    ``z ~ N(0, I)`` drawn from ``key`` (Gumbel noise from ``fold_in(key, _GUMBEL)``): cut with
    :func:`jaxrec.attacks.profiles.top_l` at ``lengths``, ``scores`` give exactly the profiles that
    D judged in training for the same ``z``, Gumbel noise and lengths."""
    lengths = jnp.asarray(lengths, jnp.int32)
    z = sample_noise(key, lengths.shape[0], spec.noise_dim)
    _, out = users_from_noise(spec, g_params, z, jax.random.fold_in(key, _GUMBEL), lengths)
    return out


@functools.partial(jax.jit, static_argnums=0)
def d_prob(spec: GANSpec, d_params, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
    """``[B]`` D's probability that each row of ``x [B, n_items]`` is real (dropout off)."""
    return jax.nn.sigmoid(spec.discriminator.apply(d_params, x, cond, train=False))


def d_suspicion(spec: GANSpec, d_params, x) -> np.ndarray:
    """``[B]`` D as a detector: the suspicion ``1 - D(x)`` of each row of ``x [B, n_items]`` (what D
    sees, :func:`d_view`), for :mod:`jaxrec.attacks.detection`."""
    return 1.0 - np.asarray(d_prob(spec, d_params, jnp.asarray(x)))


#: model selection of a GAN run: none (the last epoch), the realism gap, or the fresh detector's AUC
SELECTIONS = ("none", "realism", "detector")

#: ``fold_in`` tags of the keys a study draws from ``key(gan.seed)`` outside training: the
#: per-epoch report's fakes, the final fakes and the model-selection fakes (one per stream, shared
#: by every study that trains a GAN)
STREAMS = {"report": 101, "final": 102, "select": 104}


def stream_key(seed: int, stream: str) -> jax.Array:
    """The typed key of ``stream`` (a name of :data:`STREAMS`) for the GAN seed ``seed``."""
    return jax.random.fold_in(jax.random.key(seed), STREAMS[stream])


@functools.partial(jax.jit, static_argnums=0)
def gan_loss_eval(spec: GANSpec, state: GANState, key: jax.Array, real: jax.Array) -> dict:
    """Deterministic (dropout-off) figures on ``real [B, n_items]``: ``d_loss`` (the seed's L(G, D)),
    ``g_loss`` (G's adversarial objective), ``d_real``, ``d_fake`` (mean probabilities)."""
    _, shown, _ = fake_users(spec, state.g.params, key, real)
    cond = real if spec.conditional else None
    lr = spec.discriminator.apply(state.d.params, real, cond, train=False)
    lf = spec.discriminator.apply(state.d.params, shown, cond, train=False)
    w = jnp.ones(real.shape[0])
    lreal, lfake = d_loss_terms(lr, lf, w, spec.loss, spec.label_smoothing)
    return {
        "d_loss": lreal + lfake,
        "g_loss": g_adversarial_loss(lf, w, spec.non_saturating, spec.loss),
        "d_real": jnp.mean(jax.nn.sigmoid(lr)),
        "d_fake": jnp.mean(jax.nn.sigmoid(lf)),
    }


# ------------------------------------------------------------------------------------------------
def kept(state: GANState) -> dict:
    """What the engine keeps of a GAN epoch (the best one under model selection): ``{"g", "d"}``
    params."""
    return {"g": state.g.params, "d": state.d.params}


def realism_valid(
    real: np.ndarray, lengths: np.ndarray, key: jax.Array, *, levels: int = 0, folds: int = 0, seed: int = 0
) -> dict:
    """Validation data of :func:`realism_validate`: held-out real users ``real [V, n_items]`` (never
    the users a report tests on; ``rating / K`` for a rated GAN, ``levels = K``), the fake
    profiles' lengths ``[N]`` and a typed key for their noise (the same fakes' noise every
    epoch), with the real users' own figures; ``folds > 0`` adds the fresh detector's stratified
    folds (drawn from ``seed``) for ``select: detector``."""
    real = np.asarray(real, np.float32)
    r = jnp.asarray(real > 0, jnp.float32)
    out = {
        "real": r,
        "lengths": jnp.asarray(lengths, jnp.int32),
        "key": key,
        "nn_cosine_real": jnp.mean(realism.nearest_cosine(r, r, exclude_self=True)),
        "diversity_real": realism.pairwise_jaccard(r),
    }
    if levels:
        out["rating_counts"] = realism.rating_counts(np.round(real * levels), levels)
    if folds:
        fold, train = fold_masks(len(real), len(lengths), folds, seed)
        out.update(view=jnp.asarray(real), fold=jnp.asarray(fold), train=jnp.asarray(train))
    return out


def realism_validate(spec: GANSpec) -> Callable:
    """``validate(kept, data, valid) -> {realism, popularity_jsd, nn_cosine, diversity[, rating_jsd,
    detector, fresh_auc]}``: the kept G's fake profiles (:func:`sample`, cut by
    :func:`~jaxrec.attacks.discrete.top_l_mask` at ``valid["lengths"]``) against the held-out
    real users of :func:`realism_valid`; ``realism = -`` :func:`~jaxrec.adversarial.realism.realism_gap`;
    with folds, ``detector = -fresh_auc``, the out-of-fold ROC-AUC of a fresh logistic regression
    (:mod:`jaxrec.attacks.fresh_detector`) telling the fakes from those users (the engine
    maximises the monitored one)."""

    def validate(kept_params, data, valid):
        lengths = valid["lengths"]
        drawn = sample(spec, kept_params["g"], valid["key"], lengths)
        fakes = top_l_mask(drawn.scores, lengths)
        counts = None
        if spec.rating_levels:
            counts = realism.rating_counts(drawn.rate(fakes), spec.rating_levels)
        fig = realism.realism_gap(
            fakes, valid["real"], valid["nn_cosine_real"], valid["diversity_real"], counts, valid.get("rating_counts")
        )
        out = {"realism": -fig.pop("gap"), **fig}
        if "fold" in valid:
            oof = out_of_fold_scores(
                valid["view"], d_view(drawn.rate(fakes), spec.rating_levels), valid["fold"], valid["train"]
            )
            m = valid["view"].shape[0]  # real rows first
            auc = roc_auc(oof[m:], oof[:m])
            out.update(fresh_auc=auc, detector=-auc)
        return out

    return validate


@dataclasses.dataclass
class GANFit:
    """What :func:`fit_gan` returns: the final state, one record per epoch (mean step metrics,
    ``epoch``, ``seconds`` and whatever ``on_epoch_end`` added), the engine's tracker, and the
    selected epoch's G and D (``selected``: the final state's own without model selection)."""

    state: GANState
    history: list[dict]
    tracker: object = None
    selected: GANState | None = None
    selected_epoch: int = 0


@functools.lru_cache(maxsize=16)
def gan_engine(spec: GANSpec, *, batch_size: int, n_users: int, mesh=None, select: str | None = None):
    """The member engine (:func:`jaxrec.train.engine.make_engine`) of one GAN: its epoch is
    :func:`make_gan_epoch`, the kept pytree G's and D's params, divergence checked on every metric;
    ``select`` (``"realism"`` or ``"detector"``): validated by :func:`realism_validate`, the epoch of
    the best monitored figure kept. One per
    (spec, batch size, user count, mesh, select), so repeated runs (seeds, tests, a resumed run)
    compile once."""
    if batch_size < 1:
        raise JaxrecError(f"GAN batch size must be >= 1, got {batch_size}")
    validate = realism_validate(spec) if select else None
    return make_engine(
        make_gan_epoch(spec, batch_size),
        1,
        keep=kept,
        loss_key="d_loss",
        mesh=mesh,
        validate=validate,
        monitor=select or "realism",
    )


def fit_gan(
    spec: GANSpec,
    state: GANState,
    data: GANData,
    *,
    epochs: int,
    batch_size: int,
    on_epoch_end: Callable[[int, GANState, dict], None] | None = None,
    mesh=None,
    start_epoch: int = 0,
    tracker=None,
    save: Callable | None = None,
    valid: dict | None = None,
    eval_every: int = 1,
    select: str = "realism",
) -> GANFit:
    """Train the GAN ``epochs`` epochs through the shared fit loop (:func:`jaxrec.train.loop.fit`).

    ``on_epoch_end(epoch, state, record)`` may add figures (realism, validation) to ``record``;
    ``save(epoch, tree)`` (a checkpointer's ``maybe_save``) gets ``{"state", "tracker"}`` after
    it. ``mesh`` splits the user batches over its ``data`` axis. A NaN/inf loss raises
    :class:`~jaxrec.train.loop.NonFiniteLossError` before the bad state is adopted. ``tracker``
    and ``start_epoch`` resume a checkpoint (``state`` then is its restored state). ``valid``
    (:func:`realism_valid`) selects, on device, the epoch of the best ``select`` figure (``realism``:
    the smallest realism gap; ``detector``: the lowest fresh-detector AUC, ``valid`` then needs
    folds) among those validated every ``eval_every`` (and the last); records gain
    ``valid/realism`` ...
    """
    engine = gan_engine(
        spec,
        batch_size=min(batch_size, data.n_users),
        n_users=data.n_users,
        mesh=mesh,
        select=select if valid is not None else None,
    )

    def hook(epoch, states, tr, record):
        one = member(states, 0)
        view = member_record(record, 0)
        before = set(view)
        if on_epoch_end is not None:
            on_epoch_end(epoch, one, view)
        record.update({k: v for k, v in view.items() if k not in before})
        if save is not None:
            save(epoch, {"state": states, "tracker": tr})

    stacked = stack([state])
    result = fit(
        engine,
        stacked,
        data,
        epochs=epochs,
        valid=valid,
        eval_every=eval_every,
        tracker=tracker,
        progress=False,
        on_epoch_end=hook,
        start_epoch=start_epoch,
    )
    one = result.member(0)
    best = one.best_params
    selected = one.state.replace(g=one.state.g.replace(params=best["g"]), d=one.state.d.replace(params=best["d"]))
    return GANFit(one.state, one.history, result.tracker, selected, one.best_epoch)
