"""End-to-end runs on the real data (``$JAXREC_DATA_DIR``; skipped locally without it, failing in CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_dir

from jaxrec.config import load_config
from jaxrec.experiment import load_split, run

pytestmark = pytest.mark.integration
CONFIGS = Path(__file__).parent.parent / "configs"


def test_ml100k_mf_comparison_protocol(ml100k_split):
    """docs/protocols.md's ml-100k protocol, MF-BPR, 20 epochs: a well-implemented BPR-MF lands
    around Recall@20 0.31 / NDCG@20 0.26."""
    cfg = load_config(CONFIGS / "ml100k-mf.yaml")
    assert cfg.train.epochs == 20 and cfg.train.l2 == 0.0 and cfg.model.initializer == "xavier_normal"
    result = run(cfg, progress=False, write=False, split=ml100k_split)
    assert ml100k_split.info["users_with_test"] == 943
    assert 0.28 < result.metrics["recall@20"] < 0.35
    assert 0.23 < result.metrics["ndcg@20"] < 0.30
    losses = [h["loss"] for h in result.fit.history]
    assert losses[-1] < losses[0]


def test_gowalla_loads_trains_and_ranks_in_bounded_memory():
    real_data_dir("gowalla/train.txt", "gowalla/test.txt")
    # one epoch of 99 steps of 8192 pairs at a larger learning rate: enough to be far above chance
    # (recall@20 0.036, 24x the bound; lr 1e-3 at the config's batch of 2048 needs ~4 epochs)
    overrides = ["train.epochs=1", "train.batch_size=8192", "train.lr=0.04", "eval.ks=[20]"]
    cfg = load_config(CONFIGS / "gowalla-mf.yaml", overrides)
    split = load_split(cfg.data)
    assert (split.n_users, split.n_items, len(split.train), len(split.test)) == (29858, 40981, 810128, 217242)
    result = run(cfg, progress=False, write=False, split=split)
    # full ranking of 29,858 users x 40,981 items in chunks: finite and far above chance
    chance = np.mean(20 / (split.n_items - split.train.user_counts()))
    assert np.isfinite(result.metrics["recall@20"])
    assert result.metrics["recall@20"] > 3 * chance
