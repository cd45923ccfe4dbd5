"""LightGCN propagation kernels, measured: one JSON object per line on stdout.

    python bench/propagation.py                                   # ml-100k and gowalla, all kernels
    python bench/propagation.py --datasets ml-100k --repeats 20

For each data set (its training graph under the configs' protocol) and each kernel of
:data:`jaxrec.data.graph.PROPAGATIONS`, it times -- after compilation, median of ``--repeats``
calls, the kernels' calls interleaved -- the forward propagation (what evaluation does once)
and forward + backward to the layer-0 tables (what every training step does once), at dim 64
with the configs' layer count.
The dense kernel is skipped when R̃ would exceed ``--dense-max`` entries (not viable). The
machine is shared: compare kernels within one run (the ``ratio`` field is relative to the
fastest kernel of that data set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.config import load_config
from jaxrec.data.graph import PROPAGATIONS, bipartite_graph
from jaxrec.experiment import load_split
from jaxrec.models.propagation import propagate

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {"ml-100k": "ml100k-lightgcn.yaml", "gowalla": "gowalla-lightgcn.yaml"}


def _time_once(fn, args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def bench_dataset(dataset: str, kernels, repeats: int, dense_max: int, dim: int = 64):
    cfg = load_config(os.path.join(HERE, "..", "configs", CONFIGS[dataset]))
    train = load_split(cfg.data).train
    layers = cfg.model.layers
    rng = np.random.default_rng(0)
    eu = jnp.asarray(rng.normal(size=(train.n_users, dim)).astype(np.float32) * 0.1)
    ei = jnp.asarray(rng.normal(size=(train.n_items, dim)).astype(np.float32) * 0.1)
    # a fixed cotangent: the gradient of <E_final, C> is the backward pass of one training step
    cu = jnp.asarray(rng.normal(size=eu.shape).astype(np.float32))
    ci = jnp.asarray(rng.normal(size=ei.shape).astype(np.float32))
    n_edges = int(len(np.unique(train.users.astype(np.int64) * train.n_items + train.items)))
    rows, timed = [], []
    for kernel in kernels:
        row = {
            "dataset": dataset,
            "kernel": kernel,
            "layers": layers,
            "dim": dim,
            "n_users": train.n_users,
            "n_items": train.n_items,
            "n_edges": n_edges,
        }
        rows.append(row)
        if kernel == "dense" and train.n_users * train.n_items > dense_max:
            row["skipped"] = f"dense R̃ has {train.n_users * train.n_items} entries > {dense_max}"
            continue
        graph = jax.tree.map(jnp.asarray, bipartite_graph(train, kernel))
        fwd = jax.jit(lambda g, u, i, k=kernel: propagate(g, u, i, layers, k))

        def objective(u, i, g, k=kernel):
            pu, pi = propagate(g, u, i, layers, k)
            return jnp.sum(pu * cu) + jnp.sum(pi * ci)

        # value_and_grad keeps the forward pass (a linear map's gradient alone would not need it)
        fwd_bwd = jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))
        jax.block_until_ready(fwd(graph, eu, ei))  # compile both
        jax.block_until_ready(fwd_bwd(eu, ei, graph))
        timed.append((row, fwd, fwd_bwd, graph, [], []))
    # interleave the kernels' repeats so that load changes on a shared machine hit all alike
    for _ in range(repeats):
        for _row, fwd, fwd_bwd, graph, t_f, t_fb in timed:
            t_f.append(_time_once(fwd, (graph, eu, ei)))
            t_fb.append(_time_once(fwd_bwd, (eu, ei, graph)))
    for row, _, _, _, t_f, t_fb in timed:
        row["fwd_ms"] = round(float(np.median(t_f)) * 1e3, 3)
        row["fwd_bwd_ms"] = round(float(np.median(t_fb)) * 1e3, 3)
    best = min((r["fwd_bwd_ms"] for r, *_ in timed), default=None)
    for row, *_ in timed:
        row["ratio"] = round(row["fwd_bwd_ms"] / best, 2)
    for row in rows:
        row.update(backend=jax.default_backend(), cpus=os.cpu_count())
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="*", default=list(CONFIGS))
    p.add_argument("--kernels", nargs="*", default=list(PROPAGATIONS))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--dense-max", type=int, default=1 << 26, help="largest dense R̃ (entries) to time")
    args = p.parse_args(argv)
    for dataset in args.datasets:
        for row in bench_dataset(dataset, args.kernels, args.repeats, args.dense_max):
            print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
