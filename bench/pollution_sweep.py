"""Profile pollution: one ``pollution_sweep`` program over k = 0..8 against a Python loop of
programs with K = k for k = 1..8 (each keeping its last k; k = 0 is every program's first),
SASRec with RecBole's defaults trained 3 epochs on ml-100k, the full and the sampled protocol,
500 evaluated users; medians of 3 after compiling both; prints one JSON line (docs/robustness.md).

Run: ``JAXREC_DATA_DIR=... python bench/pollution_sweep.py``
"""

from __future__ import annotations

import json

import numpy as np

import jaxrec
from jaxrec.evaluate import model_chunk, split_ranking
from jaxrec.experiment.benchmarks import timed
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.robustness.pollution import Pollution, pollution_sweep

K = 8


def main() -> None:
    cfg = jaxrec.load_config("ml100k-sasrec", ["train.epochs=3", "eval.sample_users=500"])
    r = jaxrec.run(cfg, progress=False, write=False)
    settings = ranking_settings(cfg, r.model)
    chunk = model_chunk(r.model, r.split.n_items, 10)
    rankings = {p: split_ranking(r.split, "test", chunk, **{**settings, "protocol": p}) for p in ("full", "sampled")}

    def sweep(k):
        return pollution_sweep(r.model, r.params, rankings, Pollution(max_k=k), ks=(10,))

    def one():
        return sweep(K)

    def loop():
        return [sweep(k) for k in range(1, K + 1)]

    a, b = one(), loop()  # compile every program
    _, s_one = timed(one, 3)
    _, s_loop = timed(loop, 3)
    diff = max(
        abs(float(a.users[p][m][k]) - float(b[max(k, 1) - 1].users[p][m][k]))
        for p in rankings
        for m in ("ndcg@10", "hit@10")
        for k in range(K + 1)
    )
    print(
        json.dumps(
            {
                "K": K,
                "users": int(np.asarray(rankings["full"].mask).sum()),
                "one_program_s": s_one,
                "loop_s": s_loop,
                "ratio": s_loop / s_one,
                "max_metric_diff": diff,
                "ndcg@10_full": [round(float(x), 4) for x in a.users["full"]["ndcg@10"]],
                "ndcg@10_sampled": [round(float(x), 4) for x in a.users["sampled"]["ndcg@10"]],
            }
        )
    )


if __name__ == "__main__":
    main()
