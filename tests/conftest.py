"""Shared fixtures: the real-data directory (skip locally, fail in CI when missing), tiny
synthetic splits, the ml-100k protocol split (loaded once per session) and the per-user numpy
reference of the ranking metrics.

The suite compiles with XLA's backend optimisation level 0 and without the CPU backend's fusion
emitters: its programs are tiny, so compiling them is most of its time, and both settings change
how fast the generated code runs, not what it computes, up to float rounding (every comparison
here is between runs of the same process, or against numpy with a tolerance; one compares two
programs whose tanh and sin may compile to different float32 approximations, at 1e-4). The
library and the benchmarks run at XLA's defaults. With the suite's 2 pytest-xdist workers
(``pyproject.toml``), level 0 halved the suite's wall time on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path

if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts a backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} --xla_cpu_use_fusion_emitters=false"

# the CLI's persistent compilation cache (jaxrec.compile_cache) is off in the suite (each test
# process compiles a program once anyway) and never touches the user's ~/.cache;
# tests/test_compile_cache.py points it at a temporary directory
os.environ["JAXREC_COMPILE_CACHE"] = "off"

import numpy as np
import pytest

from jaxrec.data.interactions import Interactions, Split


def real_data_dir(*needed: str) -> Path:
    """``$JAXREC_DATA_DIR`` holding ``needed`` files; skip when absent, fail under ``CI=true``."""
    root = os.environ.get("JAXREC_DATA_DIR")
    missing = (
        "JAXREC_DATA_DIR is not set"
        if not root
        else next((f"{Path(root) / n} is missing" for n in needed if not (Path(root) / n).is_file()), None)
    )
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real-data tests must run in CI, but {missing} (point JAXREC_DATA_DIR at shared/data)")
        pytest.skip(missing)
    return Path(root)


def random_interactions(n_users=30, n_items=40, per_user=8, seed=0) -> Interactions:
    """Synthetic implicit data: each user has ``per_user`` distinct random items."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions(users, items, n_users, n_items, source="synthetic")


def rated_csv_file(directory: Path) -> Path:
    """``directory/tiny.csv``: 25 users x 10 of 30 items (raw ids ``u7``, ``i3``), ratings 1-5."""
    inter = random_interactions(n_users=25, n_items=30, per_user=10, seed=4)
    path = directory / "tiny.csv"
    rows = "\n".join(f"u{u},i{i},{1 + (u + i) % 5}" for u, i in zip(inter.users, inter.items))
    path.write_text("user_id,item_id,rating\n" + rows + "\n")
    return path


def small_graph(n_users=12, n_items=9, n_edges=40, seed=0, isolated=True) -> Interactions:
    """Random bipartite graph (LightGCN/NGCF tests); the last user and the last item have no edge when ``isolated``."""
    rng = np.random.default_rng(seed)
    hi_u, hi_i = (n_users - 1, n_items - 1) if isolated else (n_users, n_items)
    users = rng.integers(0, hi_u, n_edges)
    items = rng.integers(0, hi_i, n_edges)  # duplicates on purpose: the graph collapses them
    return Interactions(users, items, n_users, n_items, source="synthetic-graph")


def dense_normalised_adjacency(train: Interactions) -> np.ndarray:
    """Â = D^-1/2 A D^-1/2 of the full (U+I) x (U+I) bipartite adjacency, float64 (0 rows for
    isolated nodes): the dense reference for the graph models."""
    key = np.unique(train.users.astype(np.int64) * train.n_items + train.items)
    r = np.zeros((train.n_users, train.n_items))
    r[key // train.n_items, key % train.n_items] = 1.0
    a = np.block([[np.zeros((train.n_users,) * 2), r], [r.T, np.zeros((train.n_items,) * 2)]])
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    return inv[:, None] * a * inv[None, :]


@pytest.fixture(scope="session")
def tiny_split():
    """A seeded 8:1:1 split of 30 users x 40 items, 10 items each."""
    from jaxrec.data import random_ratio

    return random_ratio(random_interactions(per_user=10), (0.8, 0.1, 0.1), seed=0)


@pytest.fixture(scope="session")
def ml100k_split():
    """The ml-100k comparison-protocol split (docs/protocols.md): all ratings positive, 8:1:1."""
    real_data_dir("ml-100k/u.data")
    from jaxrec.config import DataConfig
    from jaxrec.experiment import load_split

    return load_split(DataConfig(dataset="ml-100k"))


def restore_one(ck, state):
    """A one-member run's latest checkpoint: ``(state of its member, meta)``; ``state`` is the
    run's final (unstacked) state, used as the template."""
    from jaxrec.train.engine import init_tracker
    from jaxrec.train.state import member, stack

    states = stack([state])
    tree, meta = ck.restore({"state": states, "tracker": init_tracker(states.params, 1, False)})
    return member(tree["state"], 0), meta


def rated_interactions(n_users=40, n_items=30, per_user=8, seed=0) -> Interactions:
    """Users rate ``per_user`` distinct items 1..5 (item quality + noise); raw ids are strings
    ``u<k>`` / ``i<k>`` so that an index is never mistaken for a raw id."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(3.5, 1.0, n_items)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratings = np.clip(np.round(quality[items] + rng.normal(0, 0.7, items.size)), 1, 5)
    return Interactions(
        users,
        items,
        n_users,
        n_items,
        ratings=ratings,
        user_ids=np.array([f"u{k}" for k in range(n_users)]),
        item_ids=np.array([f"i{k}" for k in range(n_items)]),
        source="rated-synthetic",
    )


@pytest.fixture(scope="session")
def rated_split() -> Split:
    """Per user: 6 training, 1 validation and 1 test rating."""
    inter = rated_interactions()
    pos = np.arange(len(inter)) % 8
    parts = [inter.select(pos < 6), inter.select(pos == 6), inter.select(pos == 7)]
    return Split(train=parts[0], valid=parts[1], test=parts[2])


def reference_metrics(scores, train_sets, test_sets, ks):
    """Straight from the definitions, one user at a time."""
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "precision", "hit", "mrr") for k in ks}
    for u, test in enumerate(test_sets):
        if not test:
            continue
        s = scores[u].astype(np.float64).copy()
        s[list(train_sets[u])] = -np.inf
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        for k in ks:
            top = order[:k]
            hit = [1.0 if i in test else 0.0 for i in top]
            out[f"hit@{k}"].append(float(any(hit)))
            out[f"precision@{k}"].append(sum(hit) / k)
            out[f"recall@{k}"].append(sum(hit) / len(test))
            first = next((r for r, h in enumerate(hit, 1) if h), None)
            out[f"mrr@{k}"].append(1.0 / first if first else 0.0)
            dcg = sum(h / np.log2(r + 1) for r, h in enumerate(hit, 1))
            idcg = sum(1.0 / np.log2(r + 1) for r in range(1, min(len(test), k) + 1))
            out[f"ndcg@{k}"].append(dcg / idcg)
    return {k: float(np.mean(v)) for k, v in out.items()}


def reference_test_metrics(scores, split: Split, ks):
    """:func:`reference_metrics` of the test part of ``split``: ``scores [n_users, n_items]``,
    training and validation items masked (the protocol of every test evaluation)."""
    seen = [set() for _ in range(split.n_users)]
    held = [set() for _ in range(split.n_users)]
    for part in (split.train, split.valid):
        if part is not None:
            for u, i in zip(part.users, part.items):
                seen[u].add(int(i))
    for u, i in zip(split.test.users, split.test.items):
        held[u].add(int(i))
    return reference_metrics(np.asarray(scores), seen, held, ks)


def top_by_probability(p: np.ndarray, unseen: np.ndarray, n: int) -> np.ndarray:
    """``[U, I]`` bool: each user's ``n`` most probable unseen items (ties: the lower id), the
    brute-force certificate tests' top-N."""
    out = np.zeros_like(unseen)
    for u in range(p.shape[0]):
        order = [i for i in np.argsort(-p[u], kind="stable") if unseen[u, i]]
        out[u, order[:n]] = True
    return out


def timed_events_csv(directory: Path, n_users: int, n_items: int, lengths: tuple, seed: int, t0: int = 0) -> Path:
    """``directory/events.csv``: ``n_users`` users with ``lengths = (low, high)`` (high exclusive)
    timed events each over ``n_items`` items drawn uniformly (repeats allowed), seeded: the tiny
    sequence data of the sequence tests."""
    rng = np.random.default_rng(seed)
    lines = ["user_id,item_id,timestamp"]
    for u in range(n_users):
        for t in range(int(rng.integers(*lengths))):
            lines.append(f"{u},{int(rng.integers(0, n_items))},{t0 + t}")
    path = Path(directory) / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
