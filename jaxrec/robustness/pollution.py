"""Profile pollution: ``k`` items of each user's own history substituted, ``k = 0..K`` in one program.

The threat model of Yue, Zeng, Kou, Wang and Wang, "Defending Substitution-Based Profile Pollution
Attacks on Sequential Recommenders" (RecSys 2022; code ``Yueeeeeeee/RecSys-Substitution-Defense``):
at test time an adversary replaces a few items of an evaluated user's input window by other real
items, to lower the user's true next item (*untargeted*) or to raise target items (*targeted*).

The adversary's objective ``J`` (per user, to raise) reads the victim's scores at the last
position of the window (``window_scores`` of the sequence contract):

* untargeted: the cross-entropy of the held-out next item over the catalogue;
* targeted: the mean log-softmax of the ``T`` target items (raised jointly).

Yue et al.'s code uses cross-entropy too (whatever the victim's training loss), with the victim's
own top item as the untargeted label; here it is the true next item, as the threat is defined.

**Gradient-guided substitution** (``attack="gradient"``), one position per step, ``K`` steps:

1. *position*: the real position (not padding, not BERT4Rec's mask token, not yet substituted)
   whose input row has the largest gradient norm ``||dJ/de_p||``. ``positions="once"`` (Yue et
   al.'s code) ranks the positions once, by the clean window's gradient, and takes them in that
   order; ``positions="greedy"`` recomputes the gradient at the polluted window before every step;
2. *candidates*: the real items whose input rows are nearest in cosine to ``e_p + sign(g_p)`` (the
   adversarially moved row; ``g_p`` the gradient used for the position), among the items whose
   rows have cosine at least ``min_cos`` with ``e_p`` (Yue et al.'s plausibility filter; items
   failing it rank after every item passing it, so a sparse neighbourhood still yields
   candidates); the item itself is never a candidate;
3. *choice*: of the ``candidates`` best, the one that raises ``J`` most, by a forward pass each
   (Yue et al.'s ``repeated_search``); the position is always substituted.

**Random substitution** (``attack="random"``), the baseline: positions in a random order, each
replaced by a uniform real item other than the one there.

Every step's window is kept, so one program yields the windows after ``k = 0..K`` substitutions
(a ``lax.scan`` over the steps, each ``k`` the prefix of ``k + 1``); a user with fewer than ``k``
real items has all of them substituted and is counted as *exhausted* at that ``k``. The sweep
(:func:`pollution_sweep`) ranks the polluted windows with the one evaluator
(:func:`jaxrec.evaluate.rank_users`) under each given protocol (full ranking, sampled), and the
targets through per-(user, target) rows (:func:`target_rows`, the attack protocol's eligible
users: those who never interacted with the target).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.data.ranking import ranking_data
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import RankingData, check_ks, rank_users
from jaxrec.models.sequential import is_sequential
from jaxrec.top_k import top_k

ATTACKS = ("gradient", "random")  #: how positions and replacements are chosen
MODES = ("untargeted", "targeted")
POSITIONS = ("once", "greedy")  #: gradient positions ranked once (Yue et al.) or recomputed per step
_NO_FILTER = -2.0  #: ``min_cos`` at or below this keeps every item


class Pollution(NamedTuple):
    """A pollution attack's static settings (see the module docstring)."""

    attack: str = "gradient"
    max_k: int = 8  #: K: windows after 0..K substitutions
    positions: str = "once"
    candidates: int = 10  #: replacements tried by a forward pass each (Yue et al.: 10)
    min_cos: float = 0.5  #: the plausibility filter (Yue et al.: 0.5; <= -2 turns it off)


def check_pollution(spec: Pollution, model, targets=None) -> None:
    """Each mistake one line before any work: the attack, K against ``max_len``, the targets."""
    if not is_sequential(model):
        raise JaxrecError(
            f"profile pollution substitutes items of a user's history: {type(model).__name__} is not a sequence model"
        )
    if spec.attack not in ATTACKS:
        raise JaxrecError(f"unknown pollution attack {spec.attack!r}; choose one of {list(ATTACKS)}")
    if spec.positions not in POSITIONS:
        raise JaxrecError(f"unknown pollution positions {spec.positions!r}; choose one of {list(POSITIONS)}")
    if not 1 <= spec.max_k <= model.max_len:
        raise JaxrecError(f"pollution K={spec.max_k} must be between 1 and the model's max_len ({model.max_len})")
    if not 1 <= spec.candidates <= model.n_items - 1:
        raise JaxrecError(f"pollution candidates={spec.candidates} must be between 1 and {model.n_items - 1}")
    if targets is not None:
        t = np.asarray(targets)
        if t.size == 0 or t.min() < 0 or t.max() >= model.n_items:
            raise JaxrecError(f"pollution targets must be item indices in [0, {model.n_items}), got {t.tolist()}")


def objective(model, variables, cache, rows, window, truth, targets):
    """``[C]`` the adversary's objective (to raise) at input ``rows [C, L, D]`` of ``window [C, L]``:
    the cross-entropy of ``truth [C]``, or with ``targets [T]`` their mean log-softmax."""
    scores = model.apply(variables, rows, window, cache, method="window_scores")
    logp = jax.nn.log_softmax(scores, axis=-1)
    if targets is None:
        return -jnp.take_along_axis(logp, truth[:, None], axis=1)[:, 0]
    return jnp.mean(logp[:, targets], axis=1)


def pollute(model, variables, cache, spec: Pollution, window, truth, targets, key: jax.Array):
    """``window [C, L]`` (the model's ``query_window``) -> ``[K + 1, C, L]``: the windows after
    ``0..K`` substitutions (see the module docstring). ``truth [C]`` the held-out items,
    ``targets [T]`` or None (untargeted), ``key`` the random attack's draws."""
    n, C, L = model.n_items, window.shape[0], window.shape[1]
    table = model.apply(variables, jnp.arange(n)[None], method="embed")[0].astype(jnp.float32)  # [n, D]
    unit = table / jnp.maximum(jnp.linalg.norm(table, axis=-1, keepdims=True), 1e-12)
    real = window < n
    rows_of = functools.partial(model.apply, variables, method="embed")
    rc = jnp.arange(C)

    def goal(w):
        return objective(model, variables, cache, rows_of(w).astype(jnp.float32), w, truth, targets)

    def gradient(w):  # [C, L, D]: users are independent, so the sum's gradient is each user's own
        rows = rows_of(w).astype(jnp.float32)
        return jax.grad(lambda r: jnp.sum(objective(model, variables, cache, r, w, truth, targets)))(rows)

    if spec.attack == "random":
        k_pos, k_item = jax.random.split(key)
        noise = jax.random.uniform(k_pos, (C, L))
    else:
        clean_grad = gradient(window) if spec.positions == "once" else None

    def step(carry, j):
        w, used = carry
        open_ = real & ~used
        if spec.attack == "random":
            importance = noise
        else:
            g = clean_grad if spec.positions == "once" else gradient(w)
            importance = jnp.linalg.norm(g, axis=-1)
        importance = jnp.where(open_, importance, -jnp.inf)
        p = jnp.argmax(importance, axis=1)  # [C]
        valid = jnp.any(open_, axis=1)
        item = w[rc, p]
        if spec.attack == "random":
            draw = jax.random.randint(jax.random.fold_in(k_item, j), (C,), 0, n - 1)
            new = draw + (draw >= item)  # uniform over the other real items
        else:
            e, gp = table[item], g[rc, p].astype(jnp.float32)
            moved = e + jnp.sign(gp)
            moved = moved / jnp.maximum(jnp.linalg.norm(moved, axis=-1, keepdims=True), 1e-12)
            near = moved @ unit.T  # [C, n]
            if spec.min_cos > _NO_FILTER:
                near = jnp.where(unit[item] @ unit.T >= spec.min_cos, near, near - 3.0)
            near = near.at[rc, item].set(-jnp.inf)
            _, cand = top_k(spec.candidates)(near)  # [C, c]
            trials = jax.vmap(lambda c: w.at[rc, p].set(c))(cand.T)  # [c, C, L]
            scores = jax.lax.map(goal, trials)  # [c, C]
            new = cand[rc, jnp.argmax(scores, axis=0)]
        w = jnp.where(valid[:, None] & (jnp.arange(L)[None] == p[:, None]), new[:, None], w)
        used = used | (valid[:, None] & (jnp.arange(L)[None] == p[:, None]))
        return (w, used), w

    _, steps = jax.lax.scan(step, (window, jnp.zeros_like(real)), jnp.arange(spec.max_k))
    return jnp.concatenate([window[None], steps], axis=0)


def polluted_windows(model, variables, spec: Pollution, ranking: RankingData, targets, key: jax.Array):
    """``[K + 1, n_chunks, C, L]`` every evaluated user's polluted windows, chunk by chunk (pure,
    traceable); ``ranking`` carries the histories (``queries``) and held-out items."""
    cache = model.apply(variables, method="embeddings")

    def one_chunk(c):
        users, queries, held = c
        window = model.apply(variables, queries, method="query_window")
        k = jax.random.fold_in(key, users[0])
        return pollute(model, variables, cache, spec, window, jnp.maximum(held[:, 0], 0), targets, k)

    out = jax.lax.map(one_chunk, (ranking.users, ranking.queries, ranking.targets))
    return jnp.moveaxis(out, 1, 0)


def window_scorer(model, variables):
    """``windows [C, L] -> scores [C, n_items]``: the victim at the last position of a
    (possibly polluted) query window."""
    cache = model.apply(variables, method="embeddings")

    def score(w):
        rows = model.apply(variables, w, method="embed")
        return model.apply(variables, rows, w, cache, method="window_scores")

    return score


def _means(metrics: dict, mask) -> dict:
    return {k: jnp.sum(jnp.where(mask, v, 0.0)) / jnp.maximum(jnp.sum(mask), 1) for k, v in metrics.items()}


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _sweep(model, ks, spec, params, rankings, pair_rankings, pair_pos, targets, key):
    windows = polluted_windows(model, params, spec, rankings[0], targets, key)  # [K+1, n_chunks, C, L]
    score = window_scorer(model, params)
    mask = rankings[0].mask

    def at_k(w):
        out = []
        for r in rankings:  # the same users in the same layout: only the protocol differs
            out.append(_means(rank_users(score, r.replace(queries=w), ks).metrics, mask))
        for pr, pos in zip(pair_rankings, pair_pos):
            pw = flat_k_gather(w.reshape(-1, w.shape[-1]), pos, pr.users.shape)
            out.append(rank_users(score, pr.replace(queries=pw), ks).metrics)
        return out

    n_real = jnp.sum(windows[0] < model.n_items, axis=-1)  # [n_chunks, C] substitutable items
    exhausted = jnp.stack([jnp.sum((n_real < k) & mask) for k in range(spec.max_k + 1)])
    return jax.lax.map(at_k, windows), exhausted


def flat_k_gather(flat, pos, shape):
    """``flat [N, L]`` rows gathered at ``pos [P_pad]`` and laid out as ``shape`` chunks."""
    return flat[pos].reshape(*shape, flat.shape[-1])


class TargetRows(NamedTuple):
    """Per-(user, target) ranking rows of the evaluated users (the attack protocol's target
    metrics): ``data`` (one row per eligible pair; its held-out item is the target), ``pos``
    ``[P_pad]`` the pair's user's position in the flattened user layout, ``target`` ``[P]`` the
    index into the targets of each real pair."""

    data: RankingData
    pos: jax.Array
    target: np.ndarray


def target_rows(base: RankingData, interacted: Sequence[Interactions], targets, chunk: int) -> TargetRows:
    """:class:`TargetRows` for ``base``'s users: every (user, target) pair whose user never
    interacted with the target in ``interacted`` (e.g. train, valid, test), masked as ``base``
    masks the user, and under the sampled protocol ranked against the user's own sampled items.

    Args:
      base: the users' :class:`RankingData` (histories in ``queries``).
      targets: ``[T]`` item indices.
    """
    targets = np.asarray(targets, np.int64)
    mask = np.asarray(base.mask).reshape(-1)
    users = np.asarray(base.users).reshape(-1)
    n_items = interacted[0].n_items
    real = np.flatnonzero(mask)
    seen = np.zeros((users.size, targets.size), bool)
    where = np.full(interacted[0].n_users, -1, np.int64)
    where[users[real]] = real
    col = {int(t): j for j, t in enumerate(targets)}
    for part in interacted:
        keep = (where[part.users] >= 0) & np.isin(part.items, targets)
        seen[where[part.users[keep]], [col[int(i)] for i in part.items[keep]]] = True
    pair_target, pair_pos = np.nonzero(~seen[real].T)  # target-major
    pair_pos = real[pair_pos]
    if pair_pos.size == 0:
        raise JaxrecError("every evaluated user has interacted with every pollution target: no user to measure")
    P = pair_pos.size
    held = Interactions(np.arange(P), targets[pair_target].astype(np.int32), P, n_items, source="targets")
    # the pair rows mask what their user's row masks
    C = base.users.shape[1]
    er = np.asarray(base.exclude_rows)
    ec = np.asarray(base.exclude_cols)
    flat_row = (np.arange(er.shape[0])[:, None] * C + er).reshape(-1)
    flat_col = ec.reshape(-1)
    keep = flat_col < n_items
    by_user = Interactions(flat_row[keep], flat_col[keep], users.size, n_items, source="masked items")
    ptr, idx = by_user.csr()
    deg = np.diff(ptr)[pair_pos]
    rows = np.repeat(np.arange(P), deg)
    starts = np.repeat(ptr[pair_pos], deg) + np.arange(rows.size) - np.repeat(np.cumsum(deg) - deg, deg)
    masked = [Interactions(rows, idx[starts], P, n_items, source="masked items")] if rows.size else []
    queries = np.asarray(base.queries).reshape(users.size, -1)[pair_pos]
    candidates = None
    if base.candidates is not None:
        cand = np.asarray(base.candidates).reshape(users.size, -1)[pair_pos]
        candidates = np.concatenate([targets[pair_target][:, None], cand[:, 1:]], axis=1)
    data = ranking_data(held, masked, chunk, queries, candidates)
    pad = data.users.size - P
    pos = np.concatenate([pair_pos, np.zeros(pad, np.int64)]).astype(np.int32)
    return TargetRows(data, jnp.asarray(pos), pair_target)


class PollutionResult(NamedTuple):
    """What :func:`pollution_sweep` measured, per ``k = 0..K``.

    Attributes:
      users: ``{protocol: {metric: [K + 1]}}`` the mean over the evaluated users.
      targets: ``{protocol: {metric: [K + 1]}}`` the target metrics: each target's mean over its
        eligible users, averaged over the targets (empty when untargeted).
      exhausted: ``[K + 1]`` users with fewer real items than ``k`` (all of them substituted).
    """

    users: dict
    targets: dict
    exhausted: np.ndarray


def pollution_sweep(
    model,
    params,
    rankings: dict[str, RankingData],
    spec: Pollution,
    *,
    ks: Sequence[int] = (10,),
    targets: TargetRows | None = None,
    target_rankings: dict[str, TargetRows] | None = None,
    target_items=None,
    key: jax.Array | None = None,
) -> PollutionResult:
    """The victim's metrics after ``k = 0..K`` substitutions of every evaluated user's history, in
    one compiled program.

    Args:
      params: one member's variables; rankings: ``{protocol: RankingData}`` of the same users in
        the same layout (e.g. ``full`` and ``sampled`` from ``split_ranking`` with one chunk), the
        histories in ``queries``; spec: :class:`Pollution`.
      target_items: ``[T]`` item indices: a targeted attack raising them jointly (None:
        untargeted); target_rankings: ``{protocol: TargetRows}`` (:func:`target_rows`) measuring
        them.
    """
    check_pollution(spec, model, target_items)
    names = list(rankings)
    first = rankings[names[0]]
    if first.queries is None:
        raise JaxrecError("profile pollution needs the users' histories: build the ranking with max_len")
    for name in names[1:]:
        if not np.array_equal(np.asarray(rankings[name].users), np.asarray(first.users)):
            raise JaxrecError(f"the {name} ranking must hold the same users in the same chunks as the {names[0]} one")
    ks = check_ks(ks, model.n_items)
    tr = target_rankings or {}
    if target_items is not None and not tr:
        raise JaxrecError("a targeted pollution needs target_rankings (target_rows) to measure the targets")
    key = jax.random.key(0) if key is None else key
    t_arr = None if target_items is None else jnp.asarray(np.asarray(target_items), jnp.int32)
    out, exhausted = _sweep(
        model,
        ks,
        spec,
        params,
        tuple(rankings[n] for n in names),
        tuple(t.data for t in tr.values()),
        tuple(t.pos for t in tr.values()),
        t_arr,
        key,
    )
    out = jax.device_get(out)
    users = {n: {m: np.asarray(v) for m, v in out[i].items()} for i, n in enumerate(names)}
    tmetrics = {}
    for j, (n, rows) in enumerate(tr.items()):
        per = out[len(names) + j]  # {metric: [K+1, n_chunks, C]}
        flat_mask = np.asarray(rows.data.mask).reshape(-1)
        tmetrics[n] = {
            m: _target_means(np.asarray(v).reshape(v.shape[0], -1)[:, flat_mask], rows.target) for m, v in per.items()
        }
    return PollutionResult(users, tmetrics, np.asarray(exhausted))


def _target_means(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``[K + 1, P]`` per pair -> ``[K + 1]``: each target's mean over its pairs, averaged."""
    return np.mean([values[:, target == t].mean(axis=1) for t in np.unique(target)], axis=0)
