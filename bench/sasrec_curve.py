"""jaxrec's SASRec time-to-accuracy curve: training seconds against test accuracy, epoch by epoch.

    python bench/sasrec_curve.py -c configs/ml100k-sasrec.yaml --epochs 20 [--set KEY=VALUE ...]

Builds the run exactly as ``jaxrec train`` does (``build_training``, the member engine, the
evaluator with the config's protocol), trains one epoch at a time and ranks the test users after
each. The ranking is timed apart and the programs are compiled on a throwaway copy of the state
first (``compile_s``), so ``train_s`` (cumulative) is training alone. Prints one JSON line per
epoch.
``bench/compare_peer.py --sasrec`` runs it beside RecBole's SASRec.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

from jaxrec.config import load_config
from jaxrec.evaluate import compile_evaluator, model_chunk, split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.experiment.training import build_training
from jaxrec.models.sequential import is_sequential
from jaxrec.train.engine import init_tracker, make_engine
from jaxrec.train.state import member


def curve(cfg, epochs: int):
    split = load_split(cfg.data, sequential=True)
    training = build_training([cfg], split)
    assert is_sequential(training.model)
    engine = make_engine(training.epoch, 1, n_traces=None)
    state, tracker = training.state, init_tracker(training.state.params, 1, False)
    chunk = cfg.eval.chunk or model_chunk(training.model, split.n_items)
    ranking = split_ranking(split, "test", chunk, **ranking_settings(cfg, training.model))
    evaluator = compile_evaluator(training.model, member(state.params, 0), ranking, tuple(cfg.eval.ks))
    t = time.perf_counter()  # compile on a copy (the engine donates its state)
    copy = jax.tree.map(jnp.copy, (state, tracker))
    jax.block_until_ready(engine.epoch(*copy, training.data, 1))
    compile_s = time.perf_counter() - t
    total, rows = 0.0, []
    for ep in range(1, epochs + 1):
        t = time.perf_counter()
        state, tracker, metrics = engine.epoch(state, tracker, training.data, ep)
        jax.block_until_ready(metrics)
        secs = time.perf_counter() - t
        total += secs
        m = evaluator(member(state.params, 0), ranking)
        row = {
            "side": "jaxrec",
            "epoch": ep,
            "epoch_s": round(secs, 3),
            "train_s": round(total, 2),
            "ndcg@10": round(m["ndcg@10"], 4),
            "hit@10": round(m["hit@10"], 4),
            "protocol": cfg.eval.protocol,
        }
        if ep == 1:
            row["compile_s"] = round(compile_s, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", default="configs/ml100k-sasrec.yaml")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    curve(load_config(args.config, args.overrides), args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
