"""Optimized poisoning: fake profiles learned by differentiating through the victim's training.

The bi-level attack of RevAdv (Tang, Wen, Wang, "Revisiting Adversarially Learned Injection
Attacks in Recommender Systems", RecSys 2020)::

    min over fake profiles P of  L_out(theta*(P)),   theta*(P) = a surrogate trained on real + P

written with jaxrec's own pieces, so that ``jax.grad`` gives the hypergradient exactly:

* **Variable.** Scores ``Z [F, C]`` over ``C`` candidate items (all items by default) for ``F``
  fake-user slots; the profile is ``P = top-L(Z)`` with the targets forced in (the one discretiser,
  :func:`jaxrec.attacks.discrete.top_l_mask`): every profile is valid, exactly ``L`` filler items.
* **Inner problem.** The surrogate (MF or LightGCN, a Recommender module) trains with the
  engine's own pure epoch (:func:`jaxrec.train.steps.make_epoch`: shuffle, sampled negatives,
  BPR or BCE, Adam) on the real positives plus *every* (fake slot, candidate) pair, each weighted
  by ``P[f, c]`` (the pair's loss weight; for LightGCN also the fake edge's mask in the normalised
  graph, :func:`jaxrec.models.propagation.normalise`). A weight-0 pair adds nothing, so with a
  discrete ``P`` this is training on the injected profiles, while the gradient with respect to a
  weight says whether adding (or dropping) that item helps. The surrogate trains ``epochs`` from
  scratch with a fixed seed (the same initialisation and batches at every outer step), the last
  ``unroll`` of them differentiated (0: all; RevAdv unrolls the last 10 of 50), each epoch under
  ``jax.checkpoint`` (and each step within it) so memory holds one epoch's step states. ``warm``
  instead keeps the surrogate from one outer step to the next and unrolls only its ``unroll``
  newest epochs: a truncated
  hypergradient (Shaban et al., AISTATS 2019), the cheap approximation for large data.
* **Closed-form inner problem** (``closed``): the surrogate is EASE (Steck, WWW 2019), a linear
  item-item model whose fit on real + fake data is one matrix inverse (:func:`ease_scores`), over
  the candidate items. Its fitted state is a smooth function of the profile, not the end of one
  noisy training run: the trained surrogates' optimum belongs to their training trajectory (a
  retrained surrogate from another seed does not see it), the closed form's to the data, and its
  profiles transfer to victims retrained from scratch (``docs/attacks.md``, measured).
* **Outer loss** (a smooth surrogate of target HR@K over the eligible real users -- those who never
  interacted with the target in training -- averaged over (user, target) pairs): ``logsigmoid``:
  ``-log sigmoid(s_ut - s_u,(K))`` with ``s_u,(K)`` the user's K-th best score among the items it
  has not interacted with, targets left out (the logistic relaxation of ``1[s_ut > s_u,(K)]``);
  ``hr``: ``-sigmoid((s_ut - s_u,(K)) / kappa)``, the smoothed hit ratio itself, whose gradient
  goes to the pairs near the top-K boundary rather than to every pair alike; ``cw``:
  ``max(s_u,(K) - s_ut, -kappa)`` (Carlini & Wagner, S&P 2017); ``ce``: RevAdv's softmax
  cross-entropy of the targets over all items.
* **Outer step.** The gradient with respect to ``P`` is applied to ``Z`` (straight-through),
  targets and empty slots excluded, each fake row L2-normalised (RevAdv) and fed to an optax
  transform (RevAdv's SGD with momentum by default, lr 1, momentum 0.95); then ``P = top-L(Z)``.
* **Members.** Independent attacks -- seeds, target sets, attack sizes (fake rows past the size
  have weight 0) -- are one ``vmap`` over :class:`Attack` states: one compiled program.

Where this differs from RevAdv's code (``graytowne/revisit_adv_rec``): its surrogate is a weighted
MF trained on the dense matrix (MSE, weight 20 on ones); its projection is a threshold (no fixed
L, targets not forced); its outer loss is the softmax cross-entropy over all real users. Here the
inner problem is the recommenders' own BPR training and the profile keeps the attack protocol's
shape (``L`` filler items, targets at the maximum rating once rated).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Hashable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec.attacks.inner import distinct_negatives, ease_scores, fresh_surrogate, train_surrogate, with_profiles  # noqa: F401
from jaxrec.attacks.outer import LOSSES, project, scores_loss
from jaxrec.data.interactions import Interactions
from jaxrec.data.sampling import positive_sets
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import score_function
from jaxrec.models.propagation import SYMMETRIC_VJP
from jaxrec.train.state import TrainState
from jaxrec.train.steps import TrainData

#: the optimized attacks: the surrogate trained from scratch every step, trained and kept, or in closed form
KINDS = ("bilevel", "truncated", "closed")

#: Adam's ``eps_root`` in the differentiated surrogate (``sqrt(nu + eps_root)``, :func:`~jaxrec.
#: train.state.adam`). A row whose gradients were all 0 so far -- an empty fake slot's, an item's
#: whose only pairs in the first batches weigh 0 -- has ``nu = 0``, where the square root's
#: derivative is infinite: with ``eps_root = 0`` its cotangent is ``0 * inf = NaN``, and NaN spreads
#: through the hypergradient. ``eps**2`` (Adam's ``eps = 1e-8``) changes a denominator by at most
#: ``eps``; the derivative of Adam's first step at a zero gradient becomes ``1 / (2 eps)`` instead of
#: eps-Adam's own ``1 / eps``.
EPS_ROOT = 1e-16


@dataclasses.dataclass(frozen=True)
class Spec:
    """The static description of an optimization (hashable: the key of its compiled program).

    Attributes:
      model: the surrogate Recommender over ``n_real + slots`` users; loss: ``bpr`` | ``bce``;
      l2: the inner L2 weight; batch: pairs per inner step; lr: the surrogate's Adam rate;
      epochs: inner epochs; unroll: the differentiated (last) epochs, 0 = all; warm: keep the
      surrogate across outer steps (train ``unroll`` epochs per step); k: the K of the outer
      loss; outer: the outer loss (:data:`LOSSES`); kappa: the CW margin; slots, n_candidates,
      n_real_pairs: the fake block's shape and its first row in the training pairs; resample: a
      new surrogate seed (initialisation, shuffles, negatives) at every outer step, so that the
      profiles must work for any training run, not one (False: RevAdv's fixed seed); ensemble:
      surrogates trained from that many seeds at every outer step, their outer losses and
      hypergradients averaged (an expectation over the surrogate's training randomness, as
      Athalye et al., ICML 2018, average over transformations); closed: > 0 replaces the trained
      surrogate by EASE's closed form with this L2 weight (:func:`ease_scores`; ``model`` unused);
      eps_root: the surrogate's Adam ``eps_root`` (:data:`EPS_ROOT`; > 0, or the hypergradient
      of a step where some row's gradients were all 0 is NaN).
    """

    model: Hashable
    loss: str
    l2: float
    batch: int
    lr: float
    epochs: int
    unroll: int
    warm: bool
    k: int
    outer: str
    kappa: float
    slots: int
    n_candidates: int
    n_real_pairs: int
    resample: bool = False
    ensemble: int = 1
    closed: float = 0.0
    eps_root: float = EPS_ROOT

    def __post_init__(self):
        if self.outer not in LOSSES:
            raise JaxrecError(f"outer loss: unknown {self.outer!r}; choose one of {list(LOSSES)}")
        if not 0 <= self.unroll <= self.epochs or self.epochs < 1:
            raise JaxrecError(f"unroll must be in [0, epochs] and epochs >= 1, got {self.unroll} and {self.epochs}")
        if self.ensemble < 1 or (self.warm and self.ensemble > 1):
            raise JaxrecError(f"ensemble must be >= 1 (and 1 for a warm surrogate), got {self.ensemble}")
        if not self.eps_root > 0:
            raise JaxrecError(
                f"eps_root must be > 0 (Adam differentiable at a zero second moment), got {self.eps_root}"
            )
        if self.warm and self.unroll < 1:
            raise JaxrecError("warm needs unroll >= 1 (the epochs trained and differentiated per outer step)")
        kernel = getattr(self.model, "propagation", None)
        if kernel in SYMMETRIC_VJP:
            raise JaxrecError(
                f"the surrogate's propagation {kernel!r} has no gradient with respect to its edges; "
                "build it (and its graph) with 'segment_sum'"
            )


@chex.dataclass(frozen=True)
class Problem:
    """The arrays an optimization reads (shared by its members).

    Attributes:
      data: :class:`~jaxrec.train.steps.TrainData` of the real positives followed by every (fake
        slot, candidate) pair (their weights are set per profile), sampling negatives from the
        real positives only (a fake user's negatives are uniform over all items but the pair's own
        positive, :func:`distinct_negatives`).
      candidates: ``[C]`` sorted item indices a fake profile may hold.
      users: ``[U]`` the real users of the outer loss; seen: ``[U, n_items]`` bool, the items each
        interacted with in training (never ranked, and the targets they saw make them ineligible).
      gram: ``[C, C]`` the real positives' co-occurrences of the candidates ``X^T X`` (only for
        the closed-form surrogate, :func:`ease_scores`).
    """

    data: TrainData
    candidates: jax.Array
    users: jax.Array
    seen: jax.Array
    gram: jax.Array | None = None


def problem(
    train: Interactions,
    n_real: int,
    slots: int,
    batch: int,
    candidates=None,
    inputs_of=None,
    users=None,
    gram: bool = False,
):
    """:class:`Problem` for ``slots`` fake users after the ``n_real`` real ones of ``train`` (the
    real positives in an id space widened by the slots, :func:`jaxrec.attacks.poison.widen`).

    Args:
      candidates: the items a profile may hold (default: every item); inputs_of: ``train ->
        inputs`` for graph models (e.g. ``lambda t: lightgcn_inputs(bipartite_graph(t,
        "segment_sum", capacity=len(t)))``: a kernel differentiable in its edge weights); users:
        the real users of the outer loss (default: every real user with training data); gram: also
        the real positives' co-occurrences of the candidates (the closed-form surrogate's data).
    Returns ``(problem, n_real_pairs)``.
    """
    if train.n_users < n_real + slots:
        raise JaxrecError(f"{train.source}: {train.n_users} users cannot hold {n_real} real and {slots} fake ones")
    real = train.select(train.users < n_real)
    cand = np.unique(np.arange(train.n_items) if candidates is None else np.asarray(candidates))
    fake_u = np.repeat(np.arange(n_real, n_real + slots), cand.size)
    both = Interactions(
        np.r_[real.users, fake_u],
        np.r_[real.items, np.tile(cand, slots)],
        train.n_users,
        train.n_items,
        source=f"{train.source} + {slots} fake slots",
    )
    indptr, items = both.csr()  # real users first, then the fake block in (slot, candidate) order
    n_real_pairs = int(indptr[n_real])
    pair_users = np.repeat(np.arange(both.n_users, dtype=np.int32), np.diff(indptr))
    size = -(-pair_users.size // batch) * batch
    pad = lambda a: np.concatenate([a, np.zeros(size - a.size, a.dtype)])  # noqa: E731
    mask = pad(np.r_[np.ones(n_real_pairs, np.float32), np.zeros(slots * cand.size, np.float32)])
    data = TrainData(
        users=jnp.asarray(pad(pair_users)),
        items=jnp.asarray(pad(items.astype(np.int32))),
        mask=jnp.asarray(mask),
        n_real=jnp.asarray(pair_users.size, jnp.int32),
        positives=positive_sets(real),
        inputs=dict(inputs_of(both)) if inputs_of else {},
    )
    if users is None:
        users = np.flatnonzero(real.user_counts()[:n_real] > 0)
    users = np.asarray(users, np.int32)
    seen = np.zeros((users.size, train.n_items), bool)
    pos = np.full(train.n_users, -1)
    pos[users] = np.arange(users.size)
    keep = pos[real.users] >= 0
    seen[pos[real.users[keep]], real.items[keep]] = True
    co = None
    if gram:
        col = np.full(train.n_items, -1)
        col[cand] = np.arange(cand.size)
        on = col[real.items] >= 0
        x = np.zeros((n_real, cand.size), np.float32)  # the real positives' candidate columns
        x[real.users[on], col[real.items[on]]] = 1.0
        co = jnp.asarray(x.T @ x)
    out = Problem(
        data=data, candidates=jnp.asarray(cand, jnp.int32), users=jnp.asarray(users), seen=jnp.asarray(seen), gram=co
    )
    return out, n_real_pairs


def outer_loss(spec: Spec, params, inputs: dict, prob: Problem, targets: jax.Array) -> tuple[jax.Array, dict]:
    """The attacker's loss of the surrogate ``params`` and ``targets [T]`` (smaller = the targets
    rank higher), and the surrogate's own target hit ratio at K (a target beating the K-th best
    non-target item) over the eligible (user, target) pairs."""
    return scores_loss(spec, score_function(spec.model, {**params, **inputs})(prob.users), prob.seen, targets)


@chex.dataclass(frozen=True)
class Attack:
    """One attack's state (a member): ``scores [F, C]``, the profile ``[F, C]`` (``top-L`` of the
    scores, targets in), the outer optimizer's state, ``targets [T]`` (indices into the candidates),
    ``lengths [F]`` filler items per slot (0: an empty slot), the surrogate's key, and (``warm``)
    its carried state."""

    scores: jax.Array
    profile: jax.Array
    opt_state: optax.OptState
    targets: jax.Array
    lengths: jax.Array
    key: jax.Array
    surrogate: TrainState | None = None
    step: jax.Array = 0  #: outer steps taken (folded into the surrogate's key when resampling)


def init_attack(spec, tx, prob: Problem, profile0, targets, lengths, key, warm_epochs: int = 0) -> Attack:
    """An :class:`Attack` starting from ``profile0 [F, C]`` (0/1, e.g. a heuristic attack's items;
    ties broken by a tiny seeded jitter); ``warm``: its surrogate pretrained ``warm_epochs`` on it."""
    jitter = jax.random.uniform(jax.random.fold_in(key, 1), profile0.shape, maxval=1e-3)
    scores = jnp.asarray(profile0, jnp.float32) + jitter
    profile = project(scores, lengths, targets)
    surrogate = None
    if spec.warm:
        surrogate = fresh_surrogate(spec, prob.data, key)
        surrogate = train_surrogate(spec, surrogate, prob.data, profile, warm_epochs, 0)
    return Attack(
        scores=scores,
        profile=profile,
        opt_state=tx.init(scores),
        targets=targets,
        lengths=lengths,
        key=key,
        surrogate=surrogate,
        step=jnp.zeros((), jnp.int32),
    )


def hypergradient(spec: Spec, prob: Problem, att: Attack):
    """``(loss, aux, gradient [F, C], surrogate)``: the outer loss of the surrogate trained on
    ``att.profile`` and its exact gradient with respect to the profile's pair weights."""

    def one(weights, key):
        if spec.warm:
            state = train_surrogate(spec, att.surrogate, prob.data, weights, spec.unroll, spec.unroll)
        else:
            state = fresh_surrogate(spec, prob.data, key)
            state = train_surrogate(spec, state, prob.data, weights, spec.epochs, spec.unroll or spec.epochs)
        inputs = with_profiles(spec, prob.data, weights).inputs
        loss, aux = outer_loss(spec, state.params, inputs, prob, prob.candidates[att.targets])
        return loss, (aux, state)

    def objective(weights):
        if spec.closed:
            seen = prob.seen[:, prob.candidates]  # [U, C]: the users' rows and their masks, gathered once
            loss, aux = scores_loss(spec, ease_scores(prob.gram, seen, weights, spec.closed), seen, att.targets)
            return loss, (aux, att.surrogate)
        key = jax.random.fold_in(att.key, att.step) if spec.resample else att.key
        if spec.ensemble == 1:
            return one(weights, key)
        keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(spec.ensemble) + 1)
        loss, (aux, states) = jax.vmap(one, in_axes=(None, 0))(weights, keys)
        return jnp.mean(loss), (jax.tree.map(jnp.mean, aux), jax.tree.map(lambda x: x[0], states))

    (loss, (aux, state)), grad = jax.value_and_grad(objective, has_aux=True)(att.profile)
    return loss, aux, grad, None if state is None else jax.lax.stop_gradient(state)


def outer_step(spec: Spec, tx, prob: Problem, att: Attack) -> tuple[Attack, dict]:
    """One outer step of one attack: the hypergradient, the optax update of the scores (targets and
    empty slots fixed), the projection. Its metrics also count the hypergradient's non-finite
    entries (``nonfinite``, before the targets and empty slots are masked), for :func:`optimize`
    to refuse."""
    loss, aux, grad, state = hypergradient(spec, prob, att)
    nonfinite = jnp.sum(~jnp.isfinite(grad)).astype(jnp.int32)
    is_target = jnp.zeros(grad.shape[1], bool).at[att.targets].set(True)
    grad = jnp.where(is_target[None, :] | (att.lengths[:, None] == 0), 0.0, grad)
    updates, opt_state = tx.update(grad, att.opt_state, att.scores)
    scores = optax.apply_updates(att.scores, updates)
    profile = project(scores, att.lengths, att.targets)
    changed = jnp.sum(jnp.abs(profile - att.profile)) / 2
    surrogate = state if spec.warm else None
    att = att.replace(scores=scores, profile=profile, opt_state=opt_state, surrogate=surrogate, step=att.step + 1)
    return att, {"outer_loss": loss, **aux, "changed": changed, "nonfinite": nonfinite}


@functools.partial(jax.jit, static_argnums=(0, 1))
def members_step(spec: Spec, tx, prob: Problem, atts: Attack) -> tuple[Attack, dict]:
    """:func:`outer_step` of ``M`` stacked attacks (leading member axis), one compiled program."""
    return jax.vmap(lambda a: outer_step(spec, tx, prob, a))(atts)


@functools.partial(jax.jit, static_argnums=(0, 1, 6))
def members_init(spec: Spec, tx, prob: Problem, profile0, targets, lengths, warm_epochs: int, keys) -> Attack:
    """:func:`init_attack` of ``M`` attacks: ``profile0 [M, F, C]``, ``targets [M, T]``,
    ``lengths [M, F]``, ``keys [M]``."""
    return jax.vmap(lambda p, t, n, k: init_attack(spec, tx, prob, p, t, n, k, warm_epochs))(
        profile0, targets, lengths, keys
    )


def optimize(
    spec: Spec, tx, prob: Problem, atts: Attack, steps: int, on_step=None, labels=None
) -> tuple[Attack, list[dict]]:
    """``steps`` outer steps of the stacked attacks ``atts``; returns the final attacks and one
    record per step (``[M]`` lists: ``outer_loss``, ``surrogate_hr`` -- of the profile the step
    started from --, ``changed`` items). ``on_step(step, record)`` is called after each.

    A non-finite outer loss or hypergradient entry in any member at any step raises
    :class:`JaxrecError` naming the step and the members (``labels``: one name per member;
    default ``member m``): the outer step would turn it into no update, a silent no-op attack."""
    history = []
    for step in range(1, steps + 1):
        atts, metrics = members_step(spec, tx, prob, atts)
        metrics = jax.device_get(metrics)
        check_finite(step, steps, metrics.pop("nonfinite"), metrics["outer_loss"], atts.scores.shape[1:], labels)
        record = {"step": step, **{k: [float(x) for x in np.asarray(v)] for k, v in metrics.items()}}
        history.append(record)
        if on_step is not None:
            on_step(step, record)
    return atts, history


def check_finite(step: int, steps: int, nonfinite, loss, shape, labels=None) -> None:
    """Raise :class:`JaxrecError` if outer step ``step`` (of ``steps``) gave any member (``[M]``
    arrays: ``nonfinite`` hypergradient entries, ``loss`` the outer loss; ``shape`` one member's
    hypergradient) a non-finite outer loss or hypergradient entry."""
    nonfinite, loss = np.asarray(nonfinite), np.asarray(loss, np.float64)
    bad = np.flatnonzero((nonfinite > 0) | ~np.isfinite(loss))
    if not bad.size:
        return
    size = int(np.prod(shape))
    name = lambda m: labels[m] if labels is not None else f"member {m}"  # noqa: E731
    parts = [
        f"{name(m)}: outer loss {loss[m]:g}, {int(nonfinite[m]):,} of {size:,} hypergradient entries non-finite"
        for m in bad
    ]
    raise JaxrecError(
        f"outer step {step} of {steps} of the optimized attack: non-finite outer loss or hypergradient "
        f"({'; '.join(parts)}); the surrogate's training or the outer loss overflowed or divided by 0"
    )
