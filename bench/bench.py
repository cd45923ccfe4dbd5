"""Training / evaluation benchmark: one JSON object per line on stdout.

    python bench/bench.py                                   # every (model, data set) below
    python bench/bench.py --models mf --datasets ml-100k --epochs 20

Each line: model, dataset, epochs, train_s_per_epoch_median, compile_s, eval_s (median of
``--eval-repeats`` full-ranking passes over the test users after a first, untimed one:
``jaxrec.experiment.benchmarks.timed``), recall@20,
ndcg@20, and the machine. Every number is measured in this run; the machine is shared and
noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import chex
import jax

from jaxrec.config import load_config
from jaxrec.evaluate import compile_evaluator, model_chunk, split_ranking
from jaxrec.experiment import run
from jaxrec.experiment.benchmarks import timed

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "configs")

#: (model, dataset) -> config file; later models add their entries here
CASES = {
    ("mf", "ml-100k"): "ml100k-mf.yaml",
    ("mf", "gowalla"): "gowalla-mf.yaml",
    ("neumf", "ml-100k"): "ml100k-neumf.yaml",
    ("lightgcn", "ml-100k"): "ml100k-lightgcn.yaml",
    ("lightgcn", "gowalla"): "gowalla-lightgcn.yaml",
    ("ngcf", "ml-100k"): "ml100k-ngcf.yaml",
}


def bench_case(model: str, dataset: str, epochs: int | None, eval_repeats: int, overrides=()) -> dict:
    cfg = load_config(os.path.join(CONFIGS, CASES[(model, dataset)]), list(overrides))
    if epochs is not None:
        cfg = load_config(os.path.join(CONFIGS, CASES[(model, dataset)]), [*overrides, f"train.epochs={epochs}"])
    chex.clear_trace_counter()  # each case compiles its own epoch; the guard is per run
    result = run(cfg, progress=False, write=False)
    chunk = cfg.eval.chunk if cfg.eval.chunk is not None else model_chunk(result.model, result.split.n_items)
    tdata = split_ranking(result.split, "test", chunk)
    variables = {**result.params, **result.inputs}
    evaluator = compile_evaluator(result.model, variables, tdata, cfg.eval.ks)
    _, eval_s = timed(lambda: evaluator(variables, tdata), eval_repeats)
    return {
        "model": model,
        "dataset": dataset,
        "epochs": cfg.train.epochs,
        "train_s_per_epoch_median": round(result.timing["train_s_per_epoch_median"], 5),
        "compile_s": round(result.timing["compile_s"], 3),
        "eval_s": round(eval_s, 5),
        "recall@20": round(result.metrics["recall@20"], 5),
        "ndcg@20": round(result.metrics["ndcg@20"], 5),
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    p.add_argument("--eval-repeats", type=int, default=5)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    for model, dataset in CASES:
        if args.models and model not in args.models or args.datasets and dataset not in args.datasets:
            continue
        print(json.dumps(bench_case(model, dataset, args.epochs, args.eval_repeats, args.overrides)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
