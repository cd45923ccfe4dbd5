"""The normalised user-item graph of LightGCN and its propagation kernels.

LightGCN (He et al., SIGIR 2020) propagates over the symmetric bipartite adjacency
``A = [[0, R], [R^T, 0]]`` normalised as ``Â = D^{-1/2} A D^{-1/2}``. With the normalised
interaction matrix ``R̃ = D_u^{-1/2} R D_i^{-1/2}`` (``[n_users, n_items]``, entry
``1 / sqrt(deg(u) deg(i))`` per training pair) one layer is

    E_u^{(k+1)} = R̃ E_i^{(k)},        E_i^{(k+1)} = R̃^T E_u^{(k)}

and the final embeddings are the mean of the ``K + 1`` layer outputs. A node of degree 0 has no
edge, so it receives 0 (never ``0 / 0 = NaN``).

The graph is a plain dict of arrays (a pytree), built on the host by :func:`bipartite_graph`
and passed to jitted code as an argument -- the model's non-trainable ``"graph"`` collection --
so it can be vmapped and sharded. Which arrays it holds depends on the propagation kernel
(:data:`PROPAGATIONS`), measured in ``bench/propagation.py``:

* ``dense``: ``norm [n_users, n_items]`` = R̃ as a dense matrix; two matmuls per layer. Only for
  small graphs (memory ``n_users * n_items`` floats).
* ``segment_sum``: the edge list twice, sorted by user and sorted by item; each product is a
  gather of neighbour rows and a sorted ``jax.ops.segment_sum``. Default autodiff (the
  backward pass scatter-adds into the gathered table).
* ``segment_sum_vjp``: the same kernel with a custom VJP. One layer ``E -> Â E`` is linear
  with a symmetric matrix, so its VJP is the same product applied to the cotangents: the
  backward pass reuses the sorted forward kernel instead of unsorted scatter-adds (for
  LightGCN's linear stack, and for each layer of NGCF's non-linear one).
* ``bcoo`` / ``bcsr``: ``jax.experimental.sparse`` matrices built from the same arrays
  (default autodiff).
* ``bcsr_vjp``: the BCSR products with the symmetric custom VJP above.

**Fixed capacity.** ``bipartite_graph(train, kernel, capacity=E)`` pads the edge arrays to ``E``
entries (in the last user's / item's row, so every CSR stays sorted) and adds ``u_mask [E]`` (1
for a real edge) and ``i_perm [E]`` (the item-sorted slot's user-sorted slot). Such a graph is
normalised *on device*, from the masked edges, whenever it is used (:func:`normalise`): graphs of
data variants with different edges stack into one ``[M, ...]`` pytree, and a vmapped sweep may
change ``u_mask`` (drop edges) without going back to the host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

PROPAGATIONS = ("dense", "segment_sum", "segment_sum_vjp", "bcoo", "bcsr", "bcsr_vjp")

#: arrays each propagation kernel needs in the graph dict
_NEEDS = {
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
    needed = {a for n in names for a in _NEEDS[n]}
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


def normalise(graph: dict) -> dict:
    """A masked graph's weights ``1 / sqrt(deg(u) deg(i))`` computed on device from ``u_mask``
    (degrees count the masked-in edges; a masked-out edge weighs 0). Other graphs unchanged.

    Traceable and vmappable (a member's ``u_mask`` may differ); shapes: ``u_rows, u_cols,
    u_mask, i_perm [E]`` in, ``u_w, i_w [E]`` (and ``norm [U, I]`` for the dense kernel) out.
    """
    if "u_mask" not in graph:
        return graph
    mask = graph["u_mask"]
    n_users, n_items = graph["u_indptr"].shape[-1] - 1, graph["i_indptr"].shape[-1] - 1
    rows, cols = graph["u_rows"], graph["u_cols"]
    deg_u = jax.ops.segment_sum(mask, rows, n_users, indices_are_sorted=True)
    deg_i = jax.ops.segment_sum(mask, cols, n_items)
    d = deg_u[rows] * deg_i[cols]
    w = jnp.where(mask > 0, jax.lax.rsqrt(jnp.maximum(d, 1.0)), 0.0).astype(jnp.float32)
    out = {**graph, "u_w": w, "i_w": w[graph["i_perm"]]}
    if "norm" in graph:
        out["norm"] = jnp.zeros(graph["norm"].shape, jnp.float32).at[rows, cols].add(w)
    return out


def _indptr(sorted_rows: np.ndarray, n_rows: int) -> np.ndarray:
    indptr = np.zeros(n_rows + 1, np.int32)
    np.cumsum(np.bincount(sorted_rows, minlength=n_rows), out=indptr[1:])
    return indptr


def auto_propagation(n_users: int, n_items: int, backend: str | None = None) -> str:
    """The kernel measured fastest for this size and backend (``bench/propagation.py``).

    On CPU the BCSR products with the symmetric custom VJP won at both ml-100k (943 x 1682,
    80k edges) and Gowalla (29858 x 40981, 810k edges) size; see bench/README.md. Accelerators
    were not measured: they get the same kernel (``jax.experimental.sparse`` lowers BCSR to
    cuSPARSE on GPU), except that small graphs use the dense matmul form there.
    """
    backend = backend or jax.default_backend()
    if backend != "cpu" and n_users * n_items <= 1 << 23:
        return "dense"
    return "bcsr_vjp"


# ------------------------------------------------------------------------------------------------
# one layer: (E_u [U, D], E_i [I, D]) -> (R̃ E_i, R̃^T E_u)


def _layer_dense(graph, eu, ei):
    norm = graph["norm"].astype(eu.dtype)
    return norm @ ei, norm.T @ eu


def _layer_segment_sum(graph, eu, ei):
    n_users, n_items = eu.shape[0], ei.shape[0]
    yu = jax.ops.segment_sum(
        ei[graph["u_cols"]] * graph["u_w"][:, None].astype(ei.dtype),
        graph["u_rows"],
        n_users,
        indices_are_sorted=True,
    )
    yi = jax.ops.segment_sum(
        eu[graph["i_cols"]] * graph["i_w"][:, None].astype(eu.dtype),
        graph["i_rows"],
        n_items,
        indices_are_sorted=True,
    )
    return yu, yi


def _layer_bcoo(graph, eu, ei):
    n_users, n_items = eu.shape[0], ei.shape[0]
    idx = jnp.stack([graph["u_rows"], graph["u_cols"]], axis=1)
    mat = sparse.BCOO(
        (graph["u_w"].astype(eu.dtype), idx), shape=(n_users, n_items), indices_sorted=True, unique_indices=True
    )
    return mat @ ei, mat.T @ eu


def _layer_bcsr(graph, eu, ei):
    n_users, n_items = eu.shape[0], ei.shape[0]
    r = sparse.BCSR((graph["u_w"].astype(eu.dtype), graph["u_cols"], graph["u_indptr"]), shape=(n_users, n_items))
    rt = sparse.BCSR((graph["i_w"].astype(ei.dtype), graph["i_cols"], graph["i_indptr"]), shape=(n_items, n_users))
    return r @ ei, rt @ eu


_LAYERS: dict[str, Callable] = {
    "dense": _layer_dense,
    "segment_sum": _layer_segment_sum,
    "segment_sum_vjp": _layer_segment_sum,
    "bcoo": _layer_bcoo,
    "bcsr": _layer_bcsr,
    "bcsr_vjp": _layer_bcsr,
}
_SYMMETRIC_VJP = ("segment_sum_vjp", "bcsr_vjp")  #: kernels whose backward reuses the forward


def _member_batched_layer(kernel: str) -> Callable:
    """The kernel's product with a vmap rule that shares one sparse product among members.

    Under ``jax.vmap`` over members (seeds, hyperparameters, perturbation strengths) with one
    shared graph, the members' embeddings ``[M, N, D]`` are laid side by side as ``[N, M * D]``
    and multiplied once: a sparse-times-dense product's cost is dominated by walking the sparse
    matrix, so ``M`` members cost little more than one (a plain vmap of the BCSR product batches
    the sparse matrix too and is several times slower than one product). When the graph itself
    differs per member (data variants), the ``M`` graphs become one block-diagonal graph of
    ``M * U`` users and ``M * I`` items (:func:`_block_diagonal`), so the members still share one
    product. Nested vmaps apply the rule at each level.
    """
    layer = _LAYERS[kernel]

    @jax.custom_batching.custom_vmap
    def product(graph, eu, ei):
        return layer(graph, eu, ei)

    @product.def_vmap
    def rule(axis_size, in_batched, graph, eu, ei):
        g_batched, eu_b, ei_b = in_batched
        eu = eu if eu_b else jnp.broadcast_to(eu, (axis_size,) + eu.shape)
        ei = ei if ei_b else jnp.broadcast_to(ei, (axis_size,) + ei.shape)
        if any(jax.tree.leaves(g_batched)):  # one graph per member: one block-diagonal product
            graph = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + x.shape), graph, g_batched)
            n_users, n_items, d = eu.shape[1], ei.shape[1], eu.shape[-1]
            yu, yi = product(_block_diagonal(graph, n_users, n_items), eu.reshape(-1, d), ei.reshape(-1, d))
            return (yu.reshape(axis_size, n_users, d), yi.reshape(axis_size, n_items, d)), (True, True)

        def side_by_side(x):  # [M, N, D] -> [N, M * D]
            return jnp.moveaxis(x, 0, 1).reshape(x.shape[1], -1)

        def apart(y, d):  # [N, M * D] -> [M, N, D]
            return jnp.moveaxis(y.reshape(y.shape[0], axis_size, d), 1, 0)

        yu, yi = product(graph, side_by_side(eu), side_by_side(ei))
        return (apart(yu, eu.shape[-1]), apart(yi, ei.shape[-1])), (True, True)

    return product


def _block_diagonal(graph: dict, n_users: int, n_items: int) -> dict:
    """``M`` graphs of one shape (leaves ``[M, ...]``, every member's edge arrays of capacity
    ``E`` with ``indptr[-1] == E``) as one graph of ``M * U`` users and ``M * I`` items: member
    ``m``'s user ``u`` is row ``m * U + u``, its edges are entries ``m * E ...``."""
    m, e = graph["u_cols"].shape
    member = jnp.arange(m, dtype=jnp.int32)[:, None]
    out = {}
    for side, n_rows, n_cols in (("u", n_users, n_items), ("i", n_items, n_users)):
        if f"{side}_indptr" in graph:
            ptr = graph[f"{side}_indptr"]
            out[f"{side}_indptr"] = jnp.concatenate(
                [(ptr[:, :-1] + member * e).reshape(-1), jnp.full((1,), m * e, ptr.dtype)]
            )
        if f"{side}_rows" in graph:
            out[f"{side}_rows"] = (graph[f"{side}_rows"] + member * n_rows).reshape(-1)
        out[f"{side}_cols"] = (graph[f"{side}_cols"] + member * n_cols).reshape(-1)
        out[f"{side}_w"] = graph[f"{side}_w"].reshape(-1)
    return out


_BATCHED = {k: _member_batched_layer(k) for k in _SYMMETRIC_VJP}


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _symmetric_layer(graph, eu, ei, kernel):
    return _BATCHED[kernel](graph, eu, ei)


def _symmetric_fwd(graph, eu, ei, kernel):
    return _symmetric_layer(graph, eu, ei, kernel), graph


def _symmetric_bwd(kernel, graph, cotangents):
    # Â = [[0, R̃], [R̃^T, 0]] is symmetric: the VJP of E -> Â E is the same product applied to
    # the cotangents, (g_u, g_i) -> (R̃ g_i, R̃^T g_u), so the backward reuses the forward kernel
    # (and, under vmap, its one shared product). Both rules call the layer itself, so it is
    # differentiable to any order (APR's tests differentiate through a gradient).
    gu, gi = _symmetric_layer(graph, cotangents[0], cotangents[1], kernel)
    zeros = jax.tree.map(_zero_cotangent, graph)
    return zeros, gu, gi


def _zero_cotangent(x):
    if jnp.issubdtype(x.dtype, jnp.integer):
        return np.zeros(x.shape, jax.dtypes.float0)
    return jnp.zeros_like(x)


_symmetric_layer.defvjp(_symmetric_fwd, _symmetric_bwd)


def _check_kernel(graph: dict, propagation: str) -> None:
    if propagation not in _LAYERS:
        raise JaxrecError(f"unknown propagation kernel {propagation!r}; choose one of {PROPAGATIONS}")
    missing = [a for a in _NEEDS[propagation] if a not in graph]
    if missing:
        raise JaxrecError(
            f"propagation kernel {propagation!r} needs graph arrays {missing}; build the graph "
            f"with bipartite_graph(train, {propagation!r})"
        )


def propagate_layer(graph: dict, eu: jax.Array, ei: jax.Array, propagation: str):
    """One product with the normalised adjacency: ``Â [E_u; E_i] = (R̃ E_i, R̃^T E_u)``.

    Args:
      graph: arrays from :func:`bipartite_graph` for ``propagation``.
      eu: ``[n_users, D]``; ei: ``[n_items, D]``.
    Returns ``(R̃ E_i [n_users, D], R̃^T E_u [n_items, D])``. The ``*_vjp`` kernels differentiate
    it with the same product (``Â`` is symmetric); the others with JAX's autodiff.
    """
    _check_kernel(graph, propagation)
    return _layer(normalise(graph), eu, ei, propagation)


def _layer(graph: dict, eu, ei, propagation: str):
    if propagation in _SYMMETRIC_VJP:
        return _symmetric_layer(graph, eu, ei, propagation)
    return _LAYERS[propagation](graph, eu, ei)


def propagate(graph: dict, eu: jax.Array, ei: jax.Array, layers: int, propagation: str):
    """LightGCN's final embeddings ``(1/(K+1)) sum_{k=0..K} Â^k E`` (He et al., SIGIR 2020, eq. 8).

    Args:
      graph: arrays from :func:`bipartite_graph` for ``propagation``.
      eu: ``[n_users, D]`` layer-0 user embeddings; ei: ``[n_items, D]`` item embeddings.
      layers: ``K >= 0``.
      propagation: a kernel name of :data:`PROPAGATIONS`.
    Returns ``(E_u [n_users, D], E_i [n_items, D])``. With a ``*_vjp`` kernel the backward pass is
    ``K`` more forward products (the whole map is linear and symmetric).
    """
    _check_kernel(graph, propagation)
    graph = normalise(graph)  # once per propagation (a masked graph; no-op otherwise)
    sum_u, sum_i = eu, ei
    for _ in range(layers):
        eu, ei = _layer(graph, eu, ei, propagation)
        sum_u, sum_i = sum_u + eu, sum_i + ei
    scale = 1.0 / (layers + 1)
    return sum_u * scale, sum_i * scale
