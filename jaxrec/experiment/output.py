"""The one run writer: ``<output_dir>/<name>/{config.yaml, metrics.json, history.jsonl[, samples.npz]}``
for a run, ``{config.yaml, results.csv, results.json}`` for a sweep or a study."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

import yaml

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


def write_results(cfg: Config, rows: list[dict], payload: dict, extra_config: dict | None = None) -> Path:
    """Write a sweep's or a study's config (plus ``extra_config``, e.g. the grid), every row as
    ``results.csv`` (the rows' keys in first-seen order; a key a row lacks is left empty) and
    ``payload`` as ``results.json``; returns the directory."""
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    if extra_config:
        with open(run_dir / "config.yaml", "a") as f:
            f.write(yaml.safe_dump(extra_config, sort_keys=False))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(run_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    return run_dir
