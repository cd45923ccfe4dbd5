"""The one run writer: ``<output_dir>/<name>/{config.yaml, metrics.json, history.jsonl[, samples.npz]}``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxrec.config import Config, save_config


def run_dir_of(cfg: Config) -> Path:
    """``<output_dir>/<name>``: where a run of ``cfg`` writes."""
    return Path(cfg.output_dir) / cfg.name


def write_run(cfg: Config, metrics: dict, history: list[dict], samples: dict | None = None) -> Path:
    """Write a run's config, final metrics, per-epoch history (one JSON line per epoch) and
    optional arrays (``samples.npz``); returns the directory."""
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(run_dir / "history.jsonl", "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    if samples:
        np.savez_compressed(run_dir / "samples.npz", **samples)
    return run_dir
