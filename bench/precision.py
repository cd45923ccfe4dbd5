"""float32 vs bfloat16 compute for MF on ml-100k: accuracy and epoch time (JSON lines).

    JAXREC_DATA_DIR=/work/shared/data python bench/precision.py [--epochs 20] [--config configs/ml100k-mf.yaml]

Both dtypes train from the same seed on the same split; their epochs are timed *interleaved*
(one float32 epoch, one bfloat16 epoch, ...) so machine noise hits both alike, and the median
per dtype is reported with the ratio. ``model.dtype: bfloat16`` casts the embedding tables to
bfloat16 for the forward/backward pass; parameters and the Adam moments stay float32 (checked
and reported). On CPUs without native bfloat16 arithmetic expect no speed-up: the point of the
switch is memory and bandwidth on GPU/TPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from jaxrec.config import load_config
from jaxrec.evaluate import evaluate, split_ranking
from jaxrec.experiment import build_training, load_split
from jaxrec.train.loop import jit_epoch
from jaxrec.train.state import member

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(HERE, "..", "configs", "ml100k-mf.yaml"))
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    split = load_split(cfg.data)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        tr = build_training(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype=dtype)), split)
        runs[dtype] = {
            "model": tr.model,
            "state": member(tr.state, 0),
            "data": tr.data,
            "epoch": jit_epoch(tr.epoch),
            "times": [],
            "losses": [],
        }
    for _ in range(args.epochs):
        for r in runs.values():
            t0 = time.perf_counter()
            r["state"], m = r["epoch"](r["state"], r["data"])
            r["losses"].append(float(np.mean(np.asarray(m["loss"]))))  # blocks until done
            r["times"].append(time.perf_counter() - t0)
    test = split_ranking(split, "test", cfg.eval.chunk)
    medians = {}
    for dtype, r in runs.items():
        metrics = evaluate(r["model"], {**r["state"].params, **r["data"].inputs}, test, (20,))
        param_dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(r["state"].params)})
        opt_dtypes = sorted(
            {str(x.dtype) for x in jax.tree.leaves(r["state"].opt_state) if np.issubdtype(x.dtype, np.floating)}
        )
        medians[dtype] = float(np.median(r["times"][1:]))
        print(
            json.dumps(
                {
                    "dtype": dtype,
                    "dataset": cfg.data.dataset,
                    "epochs": args.epochs,
                    "recall@20": round(metrics["recall@20"], 5),
                    "ndcg@20": round(metrics["ndcg@20"], 5),
                    "final_loss": round(r["losses"][-1], 5),
                    "train_s_per_epoch_median": round(medians[dtype], 5),
                    "param_dtypes": param_dtypes,
                    "opt_state_dtypes": opt_dtypes,
                    "backend": jax.default_backend(),
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                }
            ),
            flush=True,
        )
    print(json.dumps({"bf16_over_f32_epoch_time": round(medians["bfloat16"] / medians["float32"], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
