"""Perturbations of a sequence model's input: the embeddings of the items in each user's window.

For a sequence victim (:mod:`jaxrec.models.sequential`) the adversary perturbs, per position, the
rows that the ``embed`` hook gathers for the items of an evaluated user's history window -- never
the shared item table, where one row's change would move every user holding that item. The
adversary's loss is the victim's own training loss for the user's held-out next item, read at the
last position (:class:`WindowLoss`): softmax cross-entropy over the catalogue (``ce``), or
BCE / gBCE against ``negatives`` uniform items drawn per user (``bce``, ``gbce``). FGM, FGSM,
random and Gaussian noise and PGD are :mod:`jaxrec.robustness.perturb`'s, with a window position
as the row: every perturbed position moves by ``eps`` in L2. ``relative`` scales ``eps`` by the
mean row norm of the item input table. Padding positions and BERT4Rec's appended mask token are
never perturbed.

:func:`window_scorer` is the scorer :func:`jaxrec.evaluate.rank_users` calls per chunk (its
``context`` form: the chunk's users and held-out items come with the query); the strength sweep
(:func:`jaxrec.robustness.perturbed_metrics`) vmaps it over strengths, so the clean gradient of a
chunk is computed once for every strength.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrec.robustness import perturb
from jaxrec.train.sequence import position_losses


class WindowLoss(NamedTuple):
    """The adversary's loss on a sequence victim: its training loss (``ce``, ``bce``, ``gbce``),
    the negatives per user of the sampled losses and gSASRec's ``beta``."""

    loss: str = "ce"
    negatives: int = 1
    beta: float = 1.0


def user_losses(model, variables, cache, embedded, window, targets, negatives, spec: WindowLoss):
    """``[C]`` the adversary's loss per user: ``embedded [C, L, D]`` rows of ``window [C, L]``,
    held-out ``targets [C]``, ``negatives [C, k]``."""
    scores = model.apply(variables, embedded, window, cache, method="window_scores")  # [C, n_items]
    if spec.loss == "ce":
        return optax.softmax_cross_entropy_with_integer_labels(scores, targets)
    pos = jnp.take_along_axis(scores, targets[:, None], axis=1)[:, 0]
    neg = jnp.take_along_axis(scores, negatives, axis=1)
    return position_losses(spec.loss, pos, neg, spec.beta)


def item_row_norm(model, variables) -> jax.Array:
    """The mean L2 norm of the real items' input rows (the unit of ``relative`` strengths)."""
    rows = model.apply(variables, jnp.arange(model.n_items)[None], method="embed")[0]
    return jnp.mean(jnp.linalg.norm(rows.astype(jnp.float32), axis=-1))


def window_scorer(model, variables, cache, method: str, eps, unit, pgd, spec: WindowLoss, key: jax.Array):
    """``(query [C, L], users [C], targets [C, T]) -> (scores [C, n_items], {"adv_loss", "clean_loss"})``:
    the victim's scores with every user's window perturbed by ``method`` at strength ``eps * unit``
    (``pgd``: :class:`~jaxrec.robustness.strengths.PGD` settings), and the adversary's loss per
    user at the perturbed and at the clean window. ``key`` draws the negatives (per user) and the
    noise or PGD's random start (per chunk)."""
    k_neg, k_dir = jax.random.split(key)
    n_items = model.n_items

    def score(query, users, targets):
        window = model.apply(variables, query, method="query_window")
        clean = model.apply(variables, window, method="embed").astype(jnp.float32)
        real = (window < n_items)[..., None]  # not padding, not a mask token
        target = jnp.maximum(targets[:, 0], 0)
        negatives = jax.vmap(lambda u: jax.random.randint(jax.random.fold_in(k_neg, u), (spec.negatives,), 0, n_items))(
            users
        )

        def per_user(rows):
            return user_losses(model, variables, cache, rows, window, target, negatives, spec)

        def loss(tables):  # a sum: each user's gradient is its own
            return jnp.sum(per_user(tables["window"]))

        tables = {"window": clean}
        strength = eps * unit
        k_chunk = jax.random.fold_in(k_dir, users[0])
        if method == "pgd":
            delta = perturb.pgd(loss, tables, strength, pgd.steps, pgd.step_size, False, pgd.random_start, k_chunk)
        else:
            grads = jax.grad(loss)(tables) if method in ("fgm", "fgsm") else None
            delta = perturb.perturbation(method, tables, grads, strength, False, k_chunk)
        moved = clean + delta["window"] * real
        scores = model.apply(variables, moved, window, cache, method="window_scores")
        return scores, {"adv_loss": per_user(moved), "clean_loss": per_user(clean)}

    return score
