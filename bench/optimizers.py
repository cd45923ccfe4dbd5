"""Accuracy of each ``train.optimizer`` against dense Adam: one JSON object per line on stdout.

    JAXREC_DATA_DIR=/work/shared/data python bench/optimizers.py                # MF, ml-100k protocol
    python bench/optimizers.py --config configs/ml100k-neumf.yaml --seeds 4 --out bench/results/optimizers.jsonl

Per (optimizer, learning rate): the test metrics after the config's epochs (20 for MF) as mean and
sample std over ``--seeds`` seeds, every seed and rate a member of one program
(:func:`jaxrec.experiment.train_members`), and the median seconds per member-epoch. Row-wise
Adagrad takes larger rates than Adam (its step is ``lr g / sqrt(sum of g^2)``), so it is swept.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np
from common import emit, machine, peak_mb

from jaxrec.config import load_config
from jaxrec.experiment import load_split, train_members

HERE = os.path.dirname(os.path.abspath(__file__))
RATES = {"adam": [1e-3], "lazy_adam": [1e-3], "rowwise_adagrad": [0.02, 0.05, 0.1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(HERE, "..", "configs", "ml100k-mf.yaml"))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--optimizers", nargs="*", default=list(RATES))
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    base = load_config(args.config)
    split = load_split(base.data)
    for opt in args.optimizers:
        cfgs = [
            dataclasses.replace(base, train=dataclasses.replace(base.train, optimizer=opt, lr=lr, seed=s))
            for lr in RATES[opt]
            for s in range(args.seeds)
        ]
        out = train_members(cfgs, split, progress=False)
        for i, lr in enumerate(RATES[opt]):
            ms = out.metrics[i * args.seeds : (i + 1) * args.seeds]
            row = {"config": os.path.basename(args.config), "optimizer": opt, "lr": lr, "seeds": args.seeds}
            for k in ("recall@20", "ndcg@20"):
                vals = np.asarray([m[k] for m in ms])
                row[f"{k}_mean"], row[f"{k}_std"] = round(float(vals.mean()), 4), round(float(vals.std(ddof=1)), 4)
            row["member_epoch_s"] = round(out.timing["train_s_per_epoch_median"] / len(cfgs), 4)
            emit({**row, **machine(), "peak_mb": round(peak_mb())}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
