"""Propagation over the normalised user-item graph: the kernels of LightGCN and NGCF.

One layer multiplies by the symmetric normalised adjacency ``Â = [[0, R̃], [R̃^T, 0]]``
(:mod:`jaxrec.data.graph` builds its arrays): ``(E_u, E_i) -> (R̃ E_i, R̃^T E_u)``. The kernels
(:data:`jaxrec.data.graph.PROPAGATIONS`, measured in ``bench/propagation.py``):

* ``dense``: two matmuls per layer with ``norm`` (small graphs);
* ``segment_sum``: a gather of neighbour rows and a sorted ``jax.ops.segment_sum`` per product,
  default autodiff (the backward pass scatter-adds into the gathered table);
* ``segment_sum_vjp``: the same kernel with a custom VJP. One layer ``E -> Â E`` is linear with a
  symmetric matrix, so its VJP is the same product applied to the cotangents: the backward pass
  reuses the sorted forward kernel instead of unsorted scatter-adds (for LightGCN's linear
  stack, and for each layer of NGCF's non-linear one);
* ``bcoo`` / ``bcsr``: ``jax.experimental.sparse`` matrices built from the same arrays (default
  autodiff); ``bcsr_vjp``: the BCSR products with the symmetric custom VJP above.

Under ``jax.vmap`` over members (seeds, strengths, data variants) the ``*_vjp`` kernels share one
sparse product among the members (:func:`_member_batched_layer`). A graph built with a capacity
(masked edges) is normalised here, on device, by :func:`normalise`: once per epoch
(:func:`normalise_inputs`), or at each propagation when it is not normalised yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxrec.data.graph import NEEDS, PROPAGATIONS
from jaxrec.errors import JaxrecError

GRAPH = "graph"  #: name of the model variable collection holding the graph arrays


def normalise(graph: dict) -> dict:
    """A masked graph's weights ``m_e / sqrt(deg(u) deg(i))`` computed on device from the edge mask
    ``m = u_mask`` (degrees sum the masks): for a 0/1 mask LightGCN's normalisation of the
    masked-in edges (a masked-out edge weighs 0), for fractional masks the symmetric normalisation
    of the weighted adjacency, smooth in the masks (an optimized attack differentiates through
    them). Other graphs unchanged.

    Traceable and vmappable (a member's ``u_mask`` may differ); shapes: ``u_rows, u_cols,
    u_mask, i_perm [E]`` in, ``u_w, i_w [E]`` (and ``norm [U, I]`` for the dense kernel) out. The
    result is a plain graph (no ``u_mask`` / ``i_perm``), so normalising it again changes nothing.
    """
    if "u_mask" not in graph:
        return graph
    mask = graph["u_mask"]
    n_users, n_items = graph["u_indptr"].shape[-1] - 1, graph["i_indptr"].shape[-1] - 1
    rows, cols = graph["u_rows"], graph["u_cols"]
    deg_u = jax.ops.segment_sum(mask, rows, n_users, indices_are_sorted=True)
    deg_i = jax.ops.segment_sum(mask, cols, n_items)
    d = deg_u[rows] * deg_i[cols]
    w = mask * jax.lax.rsqrt(jnp.where(d > 0, d, 1.0))  # an edge of mask 1 has d >= 1: 1 / sqrt(d)
    out = {k: v for k, v in graph.items() if k not in ("u_mask", "i_perm")}  # normalised: a plain graph now
    out.update(u_w=w, i_w=w[graph["i_perm"]])
    if "norm" in graph:
        out["norm"] = jnp.zeros(graph["norm"].shape, w.dtype).at[rows, cols].add(w)
    return out


def normalise_inputs(inputs: dict) -> dict:
    """A model's inputs with a masked graph normalised (:func:`normalise`; other inputs as they
    are). An epoch does it once (:func:`jaxrec.train.steps.make_epoch`), so that the propagations
    of its steps read the weights instead of recomputing the degrees every time."""
    if GRAPH not in inputs:
        return inputs
    return {**inputs, GRAPH: normalise(inputs[GRAPH])}


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
#: kernels whose backward reuses the forward product: no gradient with respect to the edge weights
SYMMETRIC_VJP = ("segment_sum_vjp", "bcsr_vjp")


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


_BATCHED = {k: _member_batched_layer(k) for k in SYMMETRIC_VJP}


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
    missing = [a for a in NEEDS[propagation] if a not in graph]
    if missing:
        raise JaxrecError(
            f"propagation kernel {propagation!r} needs graph arrays {missing}; build the graph "
            f"with bipartite_graph(train, {propagation!r})"
        )


def propagate_layer(graph: dict, eu: jax.Array, ei: jax.Array, propagation: str):
    """One product with the normalised adjacency: ``Â [E_u; E_i] = (R̃ E_i, R̃^T E_u)``.

    Args:
      graph: arrays from :func:`jaxrec.data.graph.bipartite_graph` for ``propagation``.
      eu: ``[n_users, D]``; ei: ``[n_items, D]``.
    Returns ``(R̃ E_i [n_users, D], R̃^T E_u [n_items, D])``. The ``*_vjp`` kernels differentiate
    it with the same product (``Â`` is symmetric); the others with JAX's autodiff.
    """
    _check_kernel(graph, propagation)
    return _layer(normalise(graph), eu, ei, propagation)


def _layer(graph: dict, eu, ei, propagation: str):
    if propagation in SYMMETRIC_VJP:
        return _symmetric_layer(graph, eu, ei, propagation)
    return _LAYERS[propagation](graph, eu, ei)


def propagate(graph: dict, eu: jax.Array, ei: jax.Array, layers: int, propagation: str):
    """LightGCN's final embeddings ``(1/(K+1)) sum_{k=0..K} Â^k E`` (He et al., SIGIR 2020, eq. 8).

    Args:
      graph: arrays from :func:`jaxrec.data.graph.bipartite_graph` for ``propagation``.
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
