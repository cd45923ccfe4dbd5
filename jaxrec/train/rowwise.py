"""Row-wise sparse optimizers for the embedding tables: lazy Adam and row-wise Adagrad.

The gradient of an embedding gather is a dense table, and dense Adam reads and writes every row
of every table and of both moments at every step: the step's cost follows the table size, not the
batch. A row-wise optimizer updates only the rows a batch **touches** (the users and items it
gathers), so a step costs ``O(batch x dim)`` whatever the catalogue (the idea of TorchRec /
FBGEMM's fused row-wise optimizers and of PyTorch's ``SparseAdam``).

* ``lazy_adam`` -- Adam (Kingma & Ba, ICLR 2015) applied to the touched rows only (TensorFlow
  Addons' ``LazyAdam``, PyTorch's ``SparseAdam``): for a touched row ``r`` at step ``t``,
  ``m_r <- b1 m_r + (1 - b1) g_r``, ``v_r <- b2 v_r + (1 - b2) g_r^2``,
  ``p_r <- p_r - lr m_r / (1 - b1^t) / (sqrt(v_r / (1 - b2^t)) + eps)``. The bias correction uses the
  global step ``t``, as both peers do. **The moments of untouched rows do not decay** and their
  parameters do not move: a row last seen many steps ago keeps its old momentum until it is seen
  again (dense Adam would have kept moving it along a decaying momentum).
* ``rowwise_adagrad`` -- Adagrad (Duchi et al., JMLR 2011) with one accumulator per row, FBGEMM's
  ``EXACT_ROWWISE_ADAGRAD``: ``a_r <- a_r + mean_d(g_r^2)``, ``p_r <- p_r - lr g_r / (sqrt(a_r) + eps)``.
  One float per row instead of Adam's ``2 x dim``.

Every other parameter (NeuMF's MLP, prediction layer) keeps dense Adam with the same rate.

Which rows a step touches depends on the model: for a **row-local** model (MF, NeuMF: a pair's
score reads only its user's and its items' rows, ``model.row_local``) the train step gathers the
batch's rows, differentiates with respect to them and scatters the update back
(:func:`jaxrec.train.steps.make_train_step`'s row path); a graph model (LightGCN, NGCF)
propagates over every row, so every row is touched and ``lazy_adam`` is dense Adam there
(:meth:`RowWise.update`, the dense path).

The optimizer state is :class:`RowOptState`, a pytree (members stack it, checkpoints save it, a
mesh shards its per-row leaves like the tables); the learning rate is its
``hyperparams["learning_rate"]`` leaf, as for :func:`jaxrec.train.state.adam`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrec.errors import JaxrecError

EMBEDDINGS = "embeddings"  #: jaxrec.models.base.EMBEDDINGS (train/ imports no model code)
KINDS = ("lazy_adam", "rowwise_adagrad")  #: the row-wise optimizers
OPTIMIZERS = ("adam", *KINDS)  #: every ``train.optimizer`` choice (``adam``: dense, the default)


class RowOptState(NamedTuple):
    """The state of :class:`RowWise`.

    Attributes:
      hyperparams: ``{"learning_rate": []}`` float32 (a leaf, so members may differ).
      count: ``[]`` int32 steps taken (Adam's bias correction).
      rows: ``{"embeddings": {table: {"mu": [rows, d], "nu": [rows, d]}}}`` (lazy Adam) or
        ``{... {table: {"acc": [rows]}}}`` (row-wise Adagrad).
      dense: ``optax.scale_by_adam``'s state of the other parameters.
      slots: ``{"user": [n_users], "item": [n_items]}`` int32 scratch of :func:`touched` (which
        entry of the last batch that touched a row represented it; no optimizer state proper).
    """

    hyperparams: dict
    count: jax.Array
    rows: dict
    dense: optax.OptState
    slots: dict


def split_params(params) -> tuple[dict, dict]:
    """``params`` -> (``{name: [rows, d]}`` embedding tables, every other parameter)."""
    inner = dict(params["params"])
    tables = inner.pop(EMBEDDINGS, {})
    return tables, {**params, "params": inner}


def join_params(tables: dict, rest) -> dict:
    return {**rest, "params": {**rest["params"], EMBEDDINGS: tables}}


def _get_rows(a: jax.Array, idx: jax.Array) -> jax.Array:
    return a.at[idx].get(mode="fill", fill_value=0)


def _put_rows(a: jax.Array, v: jax.Array, idx: jax.Array) -> jax.Array:
    return a.at[idx].set(v, mode="drop")


@dataclasses.dataclass(frozen=True)
class RowWise:
    """A row-wise optimizer (static, hashable); ``kind`` is one of :data:`KINDS`.

    It has optax's ``init`` / ``update`` (the dense path: every row touched; what
    ``TrainState.apply_gradients`` calls) and :meth:`apply_rows` (the sparse path).
    """

    kind: str
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.kind not in KINDS:
            raise JaxrecError(f"unknown row-wise optimizer {self.kind!r}; choose one of {list(KINDS)}")

    def _dense(self) -> optax.GradientTransformation:
        return optax.scale_by_adam(self.b1, self.b2, self.eps)

    def init(self, params) -> RowOptState:
        tables, rest = split_params(params)
        if self.kind == "lazy_adam":
            rows = {k: {"mu": jnp.zeros_like(t), "nu": jnp.zeros_like(t)} for k, t in tables.items()}
        else:
            rows = {k: {"acc": jnp.zeros(t.shape[:1], t.dtype)} for k, t in tables.items()}
        return RowOptState(
            hyperparams={"learning_rate": jnp.asarray(1e-3, jnp.float32)},
            count=jnp.zeros((), jnp.int32),
            rows={EMBEDDINGS: rows},
            dense=self._dense().init(rest),
            slots={side: jnp.zeros(_rows(tables, side), jnp.int32) for side in ("user", "item")},
        )

    def _row_update(self, p, state: dict, g, count, lr) -> tuple[jax.Array, dict]:
        """New rows and their state from the rows ``p [R, d]``, their state and gradient ``g``."""
        if self.kind == "lazy_adam":
            mu = self.b1 * state["mu"] + (1 - self.b1) * g
            nu = self.b2 * state["nu"] + (1 - self.b2) * jnp.square(g)
            t = count.astype(jnp.float32)
            m_hat = mu / (1 - self.b1**t)
            v_hat = nu / (1 - self.b2**t)
            return p - lr * m_hat / (jnp.sqrt(v_hat) + self.eps), {"mu": mu, "nu": nu}
        acc = state["acc"] + jnp.mean(jnp.square(g), axis=-1)
        return p - lr * g / (jnp.sqrt(acc)[:, None] + self.eps), {"acc": acc}

    def _dense_step(self, rest_grads, state: RowOptState, rest, lr):
        updates, dense = self._dense().update(rest_grads, state.dense, rest)
        return optax.apply_updates(rest, jax.tree.map(lambda u: -lr * u, updates)), dense

    def update(self, grads, state: RowOptState, params):
        """optax's ``update`` with dense gradients: every row counts as touched."""
        tables, rest = split_params(params)
        g_tables, g_rest = split_params(grads)
        count = state.count + 1
        lr = state.hyperparams["learning_rate"]
        new_tables, new_rows = {}, {}
        for k, t in tables.items():
            new_tables[k], new_rows[k] = self._row_update(t, state.rows[EMBEDDINGS][k], g_tables[k], count, lr)
        new_rest, dense = self._dense_step(g_rest, state, rest, lr)
        new = join_params(new_tables, new_rest)
        updates = jax.tree.map(lambda a, b: a - b, new, params)
        return updates, state._replace(count=count, rows={EMBEDDINGS: new_rows}, dense=dense)

    def apply_rows(self, params, state: RowOptState, grads, rows: dict, slots: dict) -> tuple[dict, RowOptState]:
        """The sparse path: update only the rows ``rows[name] [R]`` of each table.

        ``grads`` are the gradients of the *view* (``params`` with each table replaced by its
        rows ``rows[name]``, ``[R, d]``) and of the dense parameters. Indices out of range
        (``>= rows of the table``) are neither read nor written. ``slots``: the new
        scratch of :func:`touched`.
        """
        tables, rest = split_params(params)
        g_tables, g_rest = split_params(grads)
        count = state.count + 1
        lr = state.hyperparams["learning_rate"]
        new_tables, new_rows = {}, {}
        for k, t in tables.items():
            get = functools.partial(_get_rows, idx=rows[k])
            put = functools.partial(_put_rows, idx=rows[k])
            old = state.rows[EMBEDDINGS][k]
            p, s = self._row_update(get(t), jax.tree.map(get, old), g_tables[k], count, lr)
            new_tables[k] = put(t, p)
            new_rows[k] = jax.tree.map(put, old, s)
        new_rest, dense = self._dense_step(g_rest, state, rest, lr)
        new_state = state._replace(count=count, rows={EMBEDDINGS: new_rows}, dense=dense, slots=slots)
        return join_params(new_tables, new_rest), new_state


def _rows(tables: dict, side: str) -> int:
    """Rows of the ``side`` (user / item) tables (0 when the model has none)."""
    return next((t.shape[0] for k, t in tables.items() if k.startswith(side)), 0)


def touched(ids: jax.Array, mask: jax.Array, slots: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The rows a batch touches, deduplicated in ``O(len(ids))`` without sorting.

    Args:
      ids: ``[N]`` row ids (the batch's users, or its flattened items); mask: ``[N]``, 1 for real
        entries (padding touches nothing); slots: ``[rows]`` int32 scratch (:class:`RowOptState`
        ``slots``), read only where this call has just written it.
    Returns ``(rows [N], view [N], slots)``. The view has one slot per entry: one entry of each
    distinct id (its representative) owns its slot and ``rows`` holds the id there; every other
    slot holds the out-of-range ``rows`` (never read nor written). ``view`` re-indexes each
    entry to its representative's slot (a padding entry to its own, empty, slot).
    """
    n = slots.shape[0]
    pos = jnp.arange(ids.shape[0], dtype=jnp.int32)
    real = mask > 0
    key = jnp.where(real, ids, n)  # padding: out of range, dropped
    slots = slots.at[key].set(pos, mode="drop")  # one writer per distinct id wins
    view = jnp.where(real, slots.at[key].get(mode="fill", fill_value=0), pos)
    rows = jnp.where(real & (view == pos), ids, n)
    return rows, view, slots
