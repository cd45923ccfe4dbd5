"""Vulnerability-Aware Adversarial Training (VAT; Zhang, Cao, Wu, Tao, Cheng, Shen, "Improving
the Shortest Plank: Vulnerability-Aware Adversarial Training for Robust Recommender System",
RecSys 2024; official code ``Kaike-Zhang/VAT``).

VAT is APR (:mod:`jaxrec.adversarial.apr`) whose perturbation magnitude is set per user by how
vulnerable the user is. A user the model fits well (a low training loss) is the easiest to move
by injected fake users, so it gets a larger perturbation. Per batch, at the current parameters,
before the update and not differentiated through (the paper's code):

* ``L_u = sum`` of the clean per-example ranking losses of user ``u``'s examples in the batch
  (a sum: a user drawn twice counts twice);
* ``m = mean`` of ``L_u`` over the batch's distinct users;
* ``w_u = lam * sigmoid(m / (L_u + 1e-9) - 1)``, in ``(0, lam)``; ``w_u = lam / 2`` when
  ``L_u = m`` (``lam = 2``, the paper's default, gives APR's ``eps`` for an average user);
* the user's perturbation is FGM with strength ``eps * w_u``.

jaxrec perturbs table rows, as APR's official code does: rows are not the batch's gathered
embeddings. A user row gets ``eps * w_u``. An item row is shared by the batch's examples, and
VAT's code scales each example's item perturbation by that example's ``w_u``. Here it gets
``eps`` times the mean ``w`` of the examples that use it (positive or negative). With equal
vulnerabilities every ``w`` is ``lam / 2``, and at ``lam = 2`` VAT is APR at the same ``eps``.
For LightGCN the perturbation acts on the layer-0 tables, like every perturbation in jaxrec.
VAT's code perturbs the propagated embeddings.

Paper defaults (its code): ``eps`` 0.6 for MF (Gowalla; 0.5 Yelp2018), 0.3 for LightGCN; the
adversarial weight 1.0; ``lam`` 2; the adversarial term on from the 5th of 30 epochs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LAMBDA = 2.0  #: the paper's ``user_lmb``: the largest weight ``w_u``


def user_weights(losses: jax.Array, users: jax.Array, mask: jax.Array, n_users: int, lam) -> jax.Array:
    """``[n_users]`` vulnerability weights ``w_u`` (see the module docstring) of the batch's users
    (0 for users outside the batch).

    Args:
      losses: ``[B]`` each example's clean ranking loss; users: ``[B]`` their users (rows of the
        user tables); mask: ``[B]`` 1 for real examples; lam: the largest weight (a traced scalar).
    """
    mask = mask.astype(jnp.float32)
    per_user = jnp.zeros(n_users, jnp.float32).at[users].add(losses.astype(jnp.float32) * mask)
    present = jnp.zeros(n_users, jnp.float32).at[users].max(mask)
    m = jnp.sum(per_user * present) / jnp.maximum(jnp.sum(present), 1.0)
    return present * lam * jax.nn.sigmoid(m / (per_user + 1e-9) - 1.0)


def row_strengths(tables: dict, eps, weights: jax.Array, users: jax.Array, items: jax.Array, mask: jax.Array) -> dict:
    """``{table: [rows]}`` per-row FGM strengths: ``eps * w_u`` for user rows, ``eps`` x the mean
    weight of the examples using an item row (0 for rows outside the batch).

    Args:
      tables: the embedding tables (``user*`` / ``item*``); weights: ``[n_users]``
        (:func:`user_weights`); users: ``[B]``; items: ``[B, 1 + n]``; mask: ``[B]``.
    """
    mask = mask.astype(jnp.float32)
    example = weights[users] * mask  # [B]
    flat = items.reshape(-1)
    per_entry = jnp.broadcast_to(example[:, None], items.shape).reshape(-1)
    used = jnp.broadcast_to(mask[:, None], items.shape).reshape(-1)
    out = {}
    for name, t in tables.items():
        if name.startswith("user"):
            out[name] = eps * weights
        else:
            total = jnp.zeros(t.shape[0], jnp.float32).at[flat].add(per_entry)
            count = jnp.zeros(t.shape[0], jnp.float32).at[flat].add(used)
            out[name] = eps * total / jnp.maximum(count, 1.0)
    return out
