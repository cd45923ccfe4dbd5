"""The optimized fake sequences: an item-transition surrogate, differentiated in closed form.

A sequence model predicts the next item mostly from the last few items of a history (SASRec's
attention on sparse data concentrates on them, Kang & McAuley ICDM 2018, Fig. 4). The
surrogate is that dependence alone, the decayed Markov chain of :mod:`jaxrec.models.markov`
fitted by counting on the real training sequences, with the fakes' transitions added to its
counts: ``C + X``, ``X [n_items, n_items]`` the transitions the fakes inject (row sums grow
with them). Fake sequences
``a_1 t_1 a_2 t_2 ...`` inject exactly ``X[a, t]`` transitions into targets (and ``t -> a``
transitions, which move no target). The attacker (who sees the training data, as the ``closed``
kind's does) chooses the *sources* ``a``: the budget ``B = sum_f L_f // 2`` of the fakes'
lengths is spread over (source, target) pairs as ``x = B softmax(theta)``, and ``theta`` ascends
the smoothed target hit over the eligible real users (never interacted with the target),

    mean_(u, t)  sigmoid((log s_u(t) - log q_u) / kappa),    q_u: the K-th largest non-target s_u,

by Adam on the closed-form surrogate's exact gradient (``jax.grad`` through the top-K and the
row normalisation; a heuristic spreads the same budget over random or popular sources). The
relaxed ``x`` is rounded to whole transitions (largest remainders) and packed into the fakes.
Candidate sources: the ``sources`` items most often among the users' last ``P`` items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec.attacks.sequences import fake_lengths
from jaxrec.errors import JaxrecError
from jaxrec.models.markov import chain_scores, contexts, transition_counts


@dataclasses.dataclass(frozen=True)
class TransitionAttack:
    """The surrogate's and the ascent's settings.

    Attributes:
      order: P, the last items a user's scores read; decay: ``w_p = decay^(p-1)``; lam: the
        rows' smoothing; k: the K of the smoothed hit; kappa: its temperature (log-score units);
      sources: candidate source items; steps, lr: Adam's ascent on ``theta``.
    """

    order: int = 2
    decay: float = 0.5
    lam: float = 1.0
    k: int = 10
    kappa: float = 0.5
    sources: int = 200
    steps: int = 100
    lr: float = 0.1


def smoothed_hit(scores, targets, eligible, spec: TransitionAttack):
    """Mean over eligible (user, target) pairs of ``sigmoid((log s_u(t) - log q_u) / kappa)``
    (``eligible [U, T]`` bool)."""
    t = jnp.asarray(targets)
    others = scores.at[:, t].set(-jnp.inf)
    q = jax.lax.top_k(others, spec.k)[0][:, -1]
    eps = 1e-9
    z = (jnp.log(scores[:, t] + eps) - jnp.log(q + eps)[:, None]) / spec.kappa
    return jnp.sum(jax.nn.sigmoid(z) * eligible) / jnp.maximum(jnp.sum(eligible), 1)


def hit_rate(scores, targets, eligible, k: int) -> float:
    """The surrogate's own target HR@K (a target strictly above the K-th non-target score)."""
    t = np.asarray(targets)
    s = np.asarray(scores)
    others = s.copy()
    others[:, t] = -np.inf
    q = np.sort(others, axis=1)[:, -k]
    return float(np.sum((s[:, t] > q[:, None]) * eligible) / max(np.sum(eligible), 1))


@dataclasses.dataclass
class Surrogate:
    """The fitted surrogate: counts (with the padding row), the users' contexts, the eligible
    pairs, the candidate sources and the targets."""

    counts: jax.Array
    ctx: jax.Array
    eligible: jax.Array
    sources: np.ndarray
    targets: np.ndarray

    def x_full(self, x):
        """``[n_items + 1, n_items]`` injected transitions of ``x [S, T]``."""
        n_items = self.counts.shape[1]
        z = jnp.zeros((n_items + 1, n_items), jnp.float32)
        return z.at[jnp.asarray(self.sources)[:, None], jnp.asarray(self.targets)[None, :]].add(x)

    def scores(self, x, spec: TransitionAttack):
        """``[U, n_items]`` surrogate scores with ``x [S, T]`` injected transitions."""
        return chain_scores(self.counts + self.x_full(x), self.ctx, spec.decay, spec.lam)


def fit_surrogate(
    indptr: np.ndarray,
    items: np.ndarray,
    n_items: int,
    users: np.ndarray,
    eligible: np.ndarray,
    targets,
    spec: TransitionAttack,
) -> Surrogate:
    """The surrogate of the real training sequences (``indptr, items``: ordered events of
    ``n_items`` items), scored for ``users`` with ``eligible [len(users), T]`` (bool); candidate
    sources are the items most often (weighted by ``w_p``) among the users' last ``P`` items,
    never a target."""
    counts = np.concatenate([transition_counts(indptr, items, n_items), np.zeros((1, n_items), np.float32)])
    ctx = contexts(indptr, items, users, spec.order, n_items)
    weight = np.zeros(n_items + 1)
    np.add.at(weight, ctx, np.broadcast_to(spec.decay ** np.arange(spec.order), ctx.shape))
    weight[n_items] = 0
    weight[np.asarray(targets)] = 0
    sources = np.argsort(-weight, kind="stable")[: min(spec.sources, int(np.sum(weight > 0)))]
    if sources.size == 0:
        raise JaxrecError("the transition attack found no real user with a history to attack")
    return Surrogate(
        jnp.asarray(counts), jnp.asarray(ctx), jnp.asarray(eligible, jnp.float32), sources, np.asarray(targets)
    )


def optimize(sur: Surrogate, budget: int, spec: TransitionAttack) -> tuple[np.ndarray, list[dict]]:
    """``x [S, T]`` relaxed transitions (summing to ``budget``) ascending the smoothed hit, and
    one row per step (``step``, ``smoothed_hit``)."""
    S, T = sur.sources.size, sur.targets.size

    def objective(theta):
        x = budget * jax.nn.softmax(theta.reshape(-1)).reshape(S, T)
        return smoothed_hit(sur.scores(x, spec), sur.targets, sur.eligible, spec)

    tx = optax.adam(spec.lr)
    value_and_grad = jax.jit(jax.value_and_grad(objective))

    @jax.jit
    def step(theta, opt_state):
        value, g = value_and_grad(theta)
        updates, opt_state = tx.update(-g, opt_state, theta)  # ascent
        return optax.apply_updates(theta, updates), opt_state, value

    theta = jnp.zeros((S, T), jnp.float32)
    opt_state = tx.init(theta)
    history = []
    for i in range(spec.steps):
        theta, opt_state, value = step(theta, opt_state)
        if not np.isfinite(float(value)):
            raise JaxrecError(f"the transition attack's objective is not finite at step {i}")
        history.append({"step": i, "smoothed_hit": float(value)})
    x = np.asarray(budget * jax.nn.softmax(theta.reshape(-1)).reshape(S, T))
    if not np.all(np.isfinite(x)):  # a non-finite last gradient: never rounded into fakes
        raise JaxrecError(f"the transition attack's allocation is not finite after step {spec.steps - 1}")
    return x, history


def round_budget(x: np.ndarray, budget: int) -> np.ndarray:
    """Whole transitions ``[S, T]`` int summing to ``budget``: ``floor(x)`` plus one for the
    largest remainders."""
    base = np.floor(x).astype(np.int64)
    left = budget - int(base.sum())
    if left > 0:
        top = np.argsort(-(x - base).reshape(-1), kind="stable")[:left]
        base.reshape(-1)[top] += 1
    return base


def pack(counts: np.ndarray, sources: np.ndarray, targets, lengths: np.ndarray, seed: int, max_len: int) -> np.ndarray:
    """``[len(lengths), max_len]`` fake sequences ``a_1 t_1 a_2 t_2 ...`` (``-1`` after): the
    ``(source, target)`` pairs of ``counts [S, T]`` (as many as ``sum(lengths // 2)``), shuffled
    (seeded) and dealt to the fakes in turn; an odd length ends with one more source."""
    s_idx, t_idx = np.nonzero(counts)
    reps = counts[s_idx, t_idx]
    pairs_s = np.repeat(sources[s_idx], reps)
    pairs_t = np.repeat(np.asarray(targets)[t_idx], reps)
    rng = np.random.default_rng(seed)
    order = rng.permutation(pairs_s.size)
    pairs_s, pairs_t = pairs_s[order], pairs_t[order]
    out = np.full((lengths.size, max_len), -1, np.int32)
    at = 0
    for f, length in enumerate(lengths):
        n = int(length) // 2
        take = np.arange(at, at + n) % max(pairs_s.size, 1)
        out[f, 0 : 2 * n : 2] = pairs_s[take]
        out[f, 1 : 2 * n : 2] = pairs_t[take]
        if length % 2:
            out[f, 2 * n] = pairs_s[(at + n) % max(pairs_s.size, 1)]
        at += n
    return out


def transition_fakes(
    sur: Surrogate,
    n: int,
    real_lengths: np.ndarray,
    seed: int,
    max_len: int,
    spec: TransitionAttack,
    fixed: int = 0,
) -> tuple[np.ndarray, list[dict]]:
    """``n`` optimized fake sequences ``[n, max_len]`` (lengths drawn as the heuristic kinds
    draw them, :func:`~jaxrec.attacks.sequences.fake_lengths`) and the ascent's rows, each with
    the surrogate's target HR@K before (no fakes) and after (the rounded transitions)."""
    lengths = fake_lengths(np.random.default_rng(seed), real_lengths, n, max_len, fixed)
    budget = int(np.sum(lengths // 2))
    x, history = optimize(sur, budget, spec)
    counts = round_budget(x, budget)
    before = hit_rate(sur.scores(jnp.zeros_like(jnp.asarray(x)), spec), sur.targets, np.asarray(sur.eligible), spec.k)
    after = hit_rate(sur.scores(jnp.asarray(counts, jnp.float32), spec), sur.targets, np.asarray(sur.eligible), spec.k)
    history = [{**h, "surrogate_hr_clean": before, "surrogate_hr": after, "budget": budget} for h in history]
    return pack(counts, sur.sources, sur.targets, lengths, seed, max_len), history


def heuristic_budget_hr(sur: Surrogate, seqs: np.ndarray, spec: TransitionAttack) -> float:
    """The surrogate's target HR@K under the fake sequences ``seqs [n, L]`` (-1 padded): how a
    heuristic kind's fakes look to the surrogate (its transitions into targets, from any source)."""
    n_items = sur.counts.shape[1]
    x_full = np.zeros((n_items + 1, n_items), np.float32)
    a, b = seqs[:, :-1], seqs[:, 1:]
    ok = (a >= 0) & (b >= 0) & np.isin(b, sur.targets)
    np.add.at(x_full, (a[ok], b[ok]), 1.0)
    scores = chain_scores(sur.counts + jnp.asarray(x_full), sur.ctx, spec.decay, spec.lam)
    return hit_rate(scores, sur.targets, np.asarray(sur.eligible), spec.k)


def check_spec(spec: TransitionAttack, n_items: int, targets: Sequence[int]) -> None:
    """Each setting in range, one keyed line each (``optimized.<key>``)."""
    if spec.order < 1:
        raise JaxrecError(f"optimized.order: the surrogate reads >= 1 last items, got {spec.order}")
    if not 0 < spec.decay <= 1:
        raise JaxrecError(f"optimized.decay: give a weight in (0, 1], got {spec.decay}")
    if not 1 <= spec.k <= n_items - len(targets):
        raise JaxrecError(f"optimized.k: {spec.k} must be between 1 and the {n_items - len(targets)} non-target items")
    if spec.kappa <= 0 or spec.lam < 0 or spec.sources < 1 or spec.steps < 1:
        raise JaxrecError("optimized: kappa > 0, lam >= 0, sources >= 1 and steps >= 1 for the transition attack")
