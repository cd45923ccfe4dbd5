"""LightGCN on Gowalla (Gowalla protocol): the Recall@20 / NDCG@20 curve within a wall-time budget.

    python bench/gowalla_curve.py --budget-s 1200 --every 1 --out runs/gowalla_curve.jsonl

Trains with ``configs/gowalla-lightgcn.yaml`` through :func:`jaxrec.train.loop.fit`, ``--every``
epochs per call, and evaluates the **test** split after each call: Gowalla has no validation
split, and this is a learning *curve* -- nothing is selected or stopped on it (the run ends on
the time budget or ``--max-epochs`` only). A new block of epochs starts only when the median
epoch time so far (plus the last evaluation) says it fits in the budget. One JSON object per line
(stdout and ``--out``):
``epoch``, ``seconds`` (cumulative training seconds, compilation included), ``epoch_s`` (median
seconds per epoch so far, first epoch excluded when there are others), ``wall_s`` (including
evaluations), ``loss``, ``recall@20``, ``ndcg@20``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from jaxrec.config import load_config
from jaxrec.evaluate import evaluate, model_chunk, split_ranking
from jaxrec.experiment import build_training, load_split
from jaxrec.train.loop import jit_epoch
from jaxrec.train.state import member

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(HERE, "..", "configs", "gowalla-lightgcn.yaml"))
    p.add_argument("--budget-s", type=float, required=True, help="wall-time budget in seconds")
    p.add_argument("--every", type=int, default=1, help="evaluate every N epochs")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    if args.every < 1 or args.budget_s <= 0:
        p.error("--every must be >= 1 and --budget-s > 0")

    start = time.perf_counter()
    cfg = load_config(args.config, args.overrides)
    split = load_split(cfg.data)
    training = build_training(cfg, split)
    model, inputs, data = training.model, training.inputs, training.data
    state = member(training.state, 0)  # one run: the unbatched epoch
    epoch_fn = jit_epoch(training.epoch)
    test = split_ranking(split, "test", cfg.eval.chunk or model_chunk(model, split.n_items))
    out = open(args.out, "a") if args.out else None

    epoch, secs, eval_s = 0, [], 0.0
    while epoch < args.max_epochs:
        n = min(args.every, args.max_epochs - epoch)
        typical = float(np.median(secs[1:] if len(secs) > 1 else secs)) if secs else 0.0
        if secs and time.perf_counter() - start + n * typical + eval_s > args.budget_s:
            break
        for _ in range(n):
            t0 = time.perf_counter()
            state, m = epoch_fn(state, data)
            loss = float(np.mean(np.asarray(m["loss"])))  # blocks until done
            secs.append(time.perf_counter() - t0)
        epoch += n
        t0 = time.perf_counter()
        metrics = evaluate(model, {**state.params, **inputs}, test, (20,))
        eval_s = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "seconds": round(sum(secs), 2),
            "epoch_s": round(float(np.median(secs[1:] if len(secs) > 1 else secs)), 2),
            "wall_s": round(time.perf_counter() - start, 2),
            "loss": round(loss, 5),
            "recall@20": round(metrics["recall@20"], 5),
            "ndcg@20": round(metrics["ndcg@20"], 5),
            "propagation": model.propagation,
            "backend": jax.default_backend(),
        }
        print(json.dumps(row), flush=True)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
