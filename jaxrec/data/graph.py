"""The normalised user-item graph of LightGCN as data: the arrays each propagation kernel reads.

LightGCN (He et al., SIGIR 2020) propagates over the symmetric bipartite adjacency
``A = [[0, R], [R^T, 0]]`` normalised as ``Â = D^{-1/2} A D^{-1/2}``. With the normalised
interaction matrix ``R̃ = D_u^{-1/2} R D_i^{-1/2}`` (``[n_users, n_items]``, entry
``1 / sqrt(deg(u) deg(i))`` per training pair) one layer is ``E_u <- R̃ E_i``, ``E_i <- R̃^T E_u``;
the maths (kernels, their custom VJP and vmap rules) is :mod:`jaxrec.models.propagation`. A node of
degree 0 has no edge, so it receives 0 (never ``0 / 0 = NaN``).

The graph is a plain dict of arrays (a pytree), built on the host by :func:`bipartite_graph`
and passed to jitted code as an argument -- the model's non-trainable ``"graph"`` collection --
so it can be vmapped and sharded. Which arrays it holds depends on the kernel
(:data:`PROPAGATIONS`, measured in ``bench/propagation.py``):

* ``dense``: ``norm [n_users, n_items]`` = R̃ as a dense matrix (small graphs only);
* ``segment_sum`` / ``segment_sum_vjp``: the edge list twice, sorted by user and sorted by item;
* ``bcoo``: the user-sorted edges; ``bcsr`` / ``bcsr_vjp``: both CSR forms.

**Fixed capacity.** ``bipartite_graph(train, kernel, capacity=E)`` pads the edge arrays to ``E``
entries (in the last user's / item's row, so every CSR stays sorted) and adds ``u_mask [E]`` (1
for a real edge) and ``i_perm [E]`` (the item-sorted slot's user-sorted slot). Such a graph is
normalised *on device*, from the masked edges, whenever it is used
(:func:`jaxrec.models.propagation.normalise`): graphs of data variants with different edges stack
into one ``[M, ...]`` pytree, and a vmapped sweep may change ``u_mask`` (drop edges) without going
back to the host.
"""

from __future__ import annotations

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

#: the propagation kernels (:mod:`jaxrec.models.propagation`), by the graph arrays they read
PROPAGATIONS = ("dense", "segment_sum", "segment_sum_vjp", "bcoo", "bcsr", "bcsr_vjp")

#: arrays each propagation kernel reads in the graph dict
NEEDS = {
    "dense": ("norm",),
    "segment_sum": ("u_rows", "u_cols", "u_w", "i_rows", "i_cols", "i_w"),
    "segment_sum_vjp": ("u_rows", "u_cols", "u_w", "i_rows", "i_cols", "i_w"),
    "bcoo": ("u_rows", "u_cols", "u_w"),
    "bcsr": ("u_indptr", "u_cols", "u_w", "i_indptr", "i_cols", "i_w"),
    "bcsr_vjp": ("u_indptr", "u_cols", "u_w", "i_indptr", "i_cols", "i_w"),
}


def normalised_edges(train: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicated training edges sorted by user, with LightGCN's symmetric normalisation.

    Returns ``users [E]``, ``items [E]`` (int32) and ``weight [E]`` (float32)
    ``= 1 / sqrt(deg(u) * deg(i))``; every edge has both degrees >= 1, so no NaN can arise.
    """
    indptr, items = train.csr()
    users = np.repeat(np.arange(train.n_users, dtype=np.int32), np.diff(indptr))
    deg_u = np.diff(indptr).astype(np.float64)
    deg_i = np.bincount(items, minlength=train.n_items).astype(np.float64)
    weight = (1.0 / np.sqrt(deg_u[users] * deg_i[items])).astype(np.float32)
    return users, items.astype(np.int32), weight


def normalised_matrix(train: Interactions) -> np.ndarray:
    """R̃ = D_u^{-1/2} R D_i^{-1/2} as a dense ``[n_users, n_items]`` float32 array (reference)."""
    users, items, weight = normalised_edges(train)
    dense = np.zeros((train.n_users, train.n_items), np.float32)
    dense[users, items] = weight
    return dense


def bipartite_graph(
    train: Interactions, propagation: str | tuple[str, ...] = "segment_sum", capacity: int | None = None
) -> dict:
    """The arrays the given propagation kernel(s) need, as a dict of numpy arrays.

    Args:
      train: training interactions (duplicates collapsed).
      propagation: one name of :data:`PROPAGATIONS` or a tuple of them.
      capacity: pad the edges to this many (see the module docstring: a masked graph, normalised
        on device); None: exactly the training edges, normalised here.
    Returns a dict holding only the arrays those kernels need (sizes are in the shapes):
      ``norm [U, I]``; ``u_rows/u_cols/u_w [E]`` edges sorted by user; ``i_rows/i_cols/i_w [E]``
      the same edges sorted by item (rows are the item ids, cols the user ids);
      ``u_indptr [U + 1]``, ``i_indptr [I + 1]`` CSR row pointers.
    """
    names = (propagation,) if isinstance(propagation, str) else tuple(propagation)
    for name in names:
        if name not in PROPAGATIONS:
            raise JaxrecError(f"unknown propagation kernel {name!r}; choose one of {PROPAGATIONS}")
    needed = {a for n in names for a in NEEDS[n]}
    users, items, weight = normalised_edges(train)
    n_real = users.size
    if capacity is not None:
        if capacity < n_real:
            raise JaxrecError(f"{train.source}: {n_real} training edges exceed the graph capacity {capacity}")
        pad = capacity - n_real
        users = np.concatenate([users, np.full(pad, train.n_users - 1, np.int32)])
        items = np.concatenate([items, np.zeros(pad, np.int32)])
        weight = np.concatenate([weight, np.zeros(pad, np.float32)])
        needed |= {"u_rows", "u_cols", "u_mask", "i_perm", "u_indptr", "i_indptr"}
    order = np.lexsort((users, items))  # by item, then user
    if capacity is not None:  # real edges by item, then the padding in the last item's row
        real = order[order < n_real]
        order = np.concatenate([real, np.arange(n_real, users.size)])
    arrays = {
        "u_rows": users,
        "u_cols": items,
        "u_w": weight,
        "i_rows": items[order],
        "i_cols": users[order],
        "i_w": weight[order],
    }
    if capacity is not None:
        arrays["i_rows"] = np.concatenate([items[real], np.full(users.size - n_real, train.n_items - 1, np.int32)])
        arrays["u_mask"] = (np.arange(users.size) < n_real).astype(np.float32)
        arrays["i_perm"] = order.astype(np.int32)
    if "u_indptr" in needed:
        arrays["u_indptr"] = _indptr(users, train.n_users)
    if "i_indptr" in needed:
        arrays["i_indptr"] = _indptr(arrays["i_rows"], train.n_items)
    if "norm" in needed:
        arrays["norm"] = normalised_matrix(train)
    return {k: v for k, v in arrays.items() if k in needed}


def _indptr(sorted_rows: np.ndarray, n_rows: int) -> np.ndarray:
    indptr = np.zeros(n_rows + 1, np.int32)
    np.cumsum(np.bincount(sorted_rows, minlength=n_rows), out=indptr[1:])
    return indptr
