"""Defenses against substitution-based profile pollution of sequence models (Yue, Zeng, Kou, Wang,
"Defending Substitution-Based Profile Pollution Attacks on Sequential Recommenders", RecSys
2022; code ``Yueeeeeeee/RecSys-Substitution-Defense``, ``adversarial/sasrec.py``), as loss
``objective`` s of :func:`jaxrec.train.sequence.make_sequence_loss_fn`, inside each length bucket.

**mix** (their ``advtrain``): adversarial training over convex mixes of item input rows. Each real
position's input is a weight vector ``w [n_items]`` on the simplex (first the item's one-hot;
the input row is ``w @ E``, ``E`` the real items' input rows). ``mix_steps`` times, at the
current parameters and without dropout (their ``model.eval()``):
``w <- normalise(max(w + mix_step * ĝ, 0))`` with ``ĝ`` the row-normalised ``∂L/∂w =
(∂L/∂e) @ E^T`` (:func:`jaxrec.robustness.perturb.fgm` with ``eps = mix_step``, positions as
rows). Then each real position is switched to its mix with probability ``ratio`` (elsewhere the
original item) and ``L_mix`` is the training loss on that input. The step minimises
``L + reg * L_mix`` (one optimizer step); ``w`` is not differentiated through, ``E`` in
``w @ E`` is (as their ``one_hot @ weight``). Memory: ``w`` is ``[B, w, n_items]`` floats, the
size of a CE step's logits.

Where it differs from their code: (1) one step on ``L + reg * L_mix`` at the current parameters;
theirs takes a clean optimizer step, then computes the mix at the updated parameters and takes a
second step on ``L_mix`` alone (``reg = 1``); (2) the simplex is the ``n_items`` real items --
theirs spans the whole vocabulary, so a mix can put weight on the padding row (or BERT4Rec's
mask row), and padding positions are mixed during the ascent (their ``get_mask`` then counts a
mixed padding position as real); here padding and mask positions keep their rows; (3) the
renormalisation keeps the previous ``w`` where a row would sum to 0 (theirs divides by 0).

**dirichlet** (their cheap defense): at ``max(1, floor(ratio * n_real))`` positions of each window,
drawn uniformly without replacement among its real positions, the input row becomes
``sum_j c_j E[n_j]``: a convex mix of the item's neighbours ``n_j`` with Dirichlet weights
``c ~ Dir(alpha ... alpha, alpha*decay ... alpha*decay)`` (first-order, then second-order
neighbours); the loss is on the substituted windows only. The neighbour table
(:func:`neighbour_table`) is built from the current input rows inside the compiled epoch
(:func:`with_neighbours`) before epoch 0 and every epoch ``e`` with ``(e + 1) % update_epochs ==
0`` (their schedule), in chunks of rows, and kept in ``state.hparams["neighbours"]`` (saved in
checkpoints, so a resumed run uses the table it had).

Where it differs from their code: (1) first-order neighbours are the ``neighbours`` (25) most
cosine-similar items among those with cosine >= ``min_cos``, or the ``min_neighbours`` most
similar when fewer pass (their rule); theirs takes a *random* 25 of those that pass; (2)
second-order neighbours (neighbours of the first-order ones, the item and its first-order ones
excluded) are the ``neighbours`` most cosine-similar to the item; theirs a random 25; (3) the
Dirichlet weights are drawn fresh per step and position; theirs come from a cache of
``cache_size^2`` draws per neighbour count, indexed by ``row * position``; (4) before
``start_epoch`` the loss is the plain one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.robustness import perturb

NEIGHBOURS = "neighbours"  #: the ``state.hparams`` entry of the neighbour table (float32 ids, -1: none)
STATE_HPARAMS = (NEIGHBOURS,)  #: hparams entries that are training state (a resumed run keeps its own)
_SUBSTITUTE, _SWITCH = 5, 6  # fold_in tags on the step's key (4 is the Cloze mask)
_CHUNK = 256  #: rows of the neighbour table computed at once ([_CHUNK, n_items] similarities)


def initial_neighbours(n_items: int, neighbours: int) -> np.ndarray:
    """The empty table ``[n_items, 2 * neighbours]`` (built before the first epoch)."""
    return np.full((n_items, 2 * neighbours), -1.0, np.float32)


def neighbour_table(rows: jax.Array, k: int, min_neighbours: int, min_cos: float, chunk: int = _CHUNK) -> jax.Array:
    """``[n, 2k]`` int32: each item's first-order neighbours (columns ``:k``) and second-order
    ones (``k:``), ``-1`` where there is none, from the input rows ``rows [n, D]``.

    First order: the ``k`` items most cosine-similar to the item (itself excluded) that have
    cosine >= ``min_cos`` or are among its ``min_neighbours`` most similar. Second order: the
    ``k`` items most similar to the item among its first-order neighbours' first-order
    neighbours, the item and its first-order neighbours excluded. Computed ``chunk`` rows at a
    time (``[chunk, n]`` similarities), never the ``[n, n]`` matrix.
    """
    n = rows.shape[0]
    unit = rows.astype(jnp.float32)
    unit = unit / jnp.maximum(jnp.linalg.norm(unit, axis=-1, keepdims=True), 1e-6)
    c = min(chunk, n)
    starts = jnp.arange(0, -(-n // c) * c, c)
    k1 = min(k, n)

    def first(start):
        idx = start + jnp.arange(c)
        sims = unit[jnp.minimum(idx, n - 1)] @ unit.T  # [c, n]
        sims = jnp.where(jnp.arange(n)[None] == idx[:, None], -jnp.inf, sims)
        vals, ids = jax.lax.top_k(sims, k1)
        keep = (vals > -jnp.inf) & ((vals >= min_cos) | (jnp.arange(k1) < min_neighbours))
        return jnp.where(keep, ids, -1)

    ones = jax.lax.map(first, starts).reshape(-1, k1)[:n]
    ones = jnp.concatenate([ones, jnp.full((n, k - k1), -1, ones.dtype)], axis=1)  # [n, k]
    k2 = min(k, k * k)

    def second(start):
        idx = jnp.minimum(start + jnp.arange(c), n - 1)
        f = ones[idx]  # [c, k]
        cand = jnp.where(f[..., None] >= 0, ones[jnp.maximum(f, 0)], -1).reshape(c, k * k)
        bad = (cand < 0) | (cand == idx[:, None]) | jnp.any(cand[..., None] == f[:, None, :], axis=-1)
        cand = jnp.sort(jnp.where(bad, n, cand), axis=-1)  # n sorts last
        repeat = jnp.concatenate([jnp.zeros((c, 1), bool), cand[:, 1:] == cand[:, :-1]], axis=1)
        ok = (cand < n) & ~repeat
        sims = jnp.einsum("cd,cjd->cj", unit[idx], unit[jnp.minimum(cand, n - 1)])
        vals, pos = jax.lax.top_k(jnp.where(ok, sims, -jnp.inf), k2)
        return jnp.where(vals > -jnp.inf, jnp.take_along_axis(cand, pos, axis=1), -1)

    twos = jax.lax.map(second, starts).reshape(-1, k2)[:n]
    return jnp.concatenate([ones, twos], axis=1).astype(jnp.int32)


def with_neighbours(epoch: Callable, model, steps_per_epoch: int, adversary) -> Callable:
    """``epoch(state, data)`` that first rebuilds ``state.hparams["neighbours"]`` from the
    current input rows when due (epoch 0, then every ``e`` with ``(e + 1) % update_epochs == 0``,
    ``e = step // steps_per_epoch``); otherwise the table is kept."""

    def wrapped(state, data):
        e = state.step // steps_per_epoch
        due = (e == 0) | ((e + 1) % adversary.update_epochs == 0)

        def build(params):
            rows = model.apply(params, jnp.arange(model.n_items)[None], method="embed")[0]
            table = neighbour_table(rows, adversary.neighbours, adversary.min_neighbours, adversary.min_cos)
            return table.astype(jnp.float32)

        table = jax.lax.cond(due, build, lambda p: state.hparams[NEIGHBOURS], state.params)
        return epoch(state.replace(hparams={**state.hparams, NEIGHBOURS: table}), data)

    return wrapped


def substitution_positions(key: jax.Array, real: jax.Array, ratio: float) -> jax.Array:
    """``[B, w]`` bool: ``max(1, floor(ratio * n_real))`` of each row's ``real [B, w]`` positions,
    uniformly without replacement (none in a row without real positions)."""
    count = jnp.maximum(1, jnp.floor(ratio * jnp.sum(real, axis=1)).astype(jnp.int32))
    priority = jnp.where(real, jax.random.uniform(key, real.shape), -1.0)
    rank = jnp.argsort(jnp.argsort(-priority, axis=1), axis=1)
    return real & (rank < count[:, None])


def dirichlet_weights(key: jax.Array, ids: jax.Array, k: int, alpha: float, decay: float) -> jax.Array:
    """``[..., 2k]`` convex weights on the neighbours ``ids [..., 2k]`` (``-1``: none, weight 0):
    Dirichlet with ``alpha`` on the first ``k`` (first order), ``alpha * decay`` on the rest."""
    valid = ids >= 0
    conc = jnp.where(jnp.arange(ids.shape[-1]) < k, alpha, alpha * decay).astype(jnp.float32)
    g = jax.random.gamma(key, jnp.broadcast_to(conc, ids.shape)) * valid
    total = jnp.sum(g, axis=-1, keepdims=True)
    return g / jnp.where(total > 0, total, 1.0)


def make_dirichlet_objective(model, adversary) -> Callable:
    """The ``objective`` of the Dirichlet defense: the loss on windows whose chosen positions
    hold Dirichlet mixes of the item's neighbours (``hparams["neighbours"]``); the plain loss
    before ``hparams["start_step"]``."""
    pad = model.n_items

    def objective(per, variables, history, items, weights, key, hparams):
        embedded = model.apply(variables, history, method="embed")  # [B, w, D]

        def substituted(point):
            v, e = point
            real = history < pad
            k_pos, k_mix = jax.random.split(jax.random.fold_in(key, _SUBSTITUTE))
            ids = hparams[NEIGHBOURS].astype(jnp.int32)[jnp.where(real, history, 0)]  # [B, w, 2k]
            chosen = substitution_positions(k_pos, real, adversary.ratio) & jnp.any(ids >= 0, axis=-1)
            c = dirichlet_weights(k_mix, ids, adversary.neighbours, adversary.alpha, adversary.decay)
            rows = model.apply(v, jnp.where(ids >= 0, ids, pad), method="embed")  # [B, w, 2k, D]
            mixed = jnp.einsum("bwk,bwkd->bwd", c, rows.astype(jnp.float32)).astype(e.dtype)
            return jnp.where(chosen[..., None], mixed, e)

        on = hparams["step"] >= hparams["start_step"]
        x = jax.lax.cond(on, substituted, lambda p: p[1], (variables, embedded))
        return jnp.sum(per(variables, history, items, key, embedded=x) * weights), {}

    return objective


def simplex_ascent(loss_of_inputs: Callable, w: jax.Array, table: jax.Array, base: jax.Array, real, steps: int, step):
    """``steps`` ascent steps of the weights ``w [B, w, n]`` on the simplex (the mix defense):
    ``w <- normalise(max(w + step * ĝ, 0))`` at the ``real [B, w]`` positions, ``ĝ`` the
    row-normalised ``∂L/∂w = (∂L/∂e) @ table^T`` of ``loss_of_inputs(e [B, w, D])`` with
    ``e = w @ table`` there and ``base`` elsewhere. Nothing here is differentiated: pass
    constants."""
    keep = real[..., None]

    def body(_, w):
        e = jnp.where(keep, (w @ table).astype(base.dtype), base)
        g = jax.grad(loss_of_inputs)(e).astype(jnp.float32) @ table.T  # [B, w, n]
        moved = jnp.maximum(w + perturb.fgm({"mix": w}, {"mix": g}, step)["mix"], 0.0)
        total = jnp.sum(moved, axis=-1, keepdims=True)
        return jnp.where(keep & (total > 0), moved / jnp.where(total > 0, total, 1.0), w)

    return jax.lax.fori_loop(0, steps, body, w)


def make_mix_objective(model, adversary) -> Callable:
    """The ``objective`` of the mix defense: ``L + reg * L_mix`` (see the module docstring)."""
    n = model.n_items

    def objective(per, variables, history, items, weights, key, hparams):
        embedded = model.apply(variables, history, method="embed")  # [B, w, D]
        clean = jnp.sum(per(variables, history, items, key, embedded=embedded) * weights)

        def mixed(point):
            v, e = point
            real = history < n
            table = model.apply(v, jnp.arange(n)[None], method="embed")[0].astype(jnp.float32)  # [n, D]
            frozen = jax.lax.stop_gradient(v)

            def eval_loss(x):
                return jnp.sum(per(frozen, history, items, key, embedded=x, train=False) * weights)

            w0 = jax.nn.one_hot(jnp.where(real, history, 0), n, dtype=jnp.float32) * real[..., None]
            const = jax.lax.stop_gradient
            steps, step = adversary.mix_steps, adversary.mix_step
            w = const(simplex_ascent(eval_loss, w0, const(table), const(e), real, steps, step))  # [B, w, n]
            switch = real & jax.random.bernoulli(jax.random.fold_in(key, _SWITCH), adversary.ratio, history.shape)
            x = jnp.where(switch[..., None], (w @ table).astype(e.dtype), e)
            return jnp.sum(per(v, history, items, key, embedded=x) * weights)

        on = hparams["step"] >= hparams["start_step"]
        adv = jax.lax.cond(on, mixed, lambda p: jnp.zeros((), jnp.float32), (variables, embedded))
        return clean + hparams["reg"] * adv, {"rank_loss": clean, "adv_loss": adv}

    return objective
