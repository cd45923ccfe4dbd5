"""Sequence victims: one ``perturbed_metrics`` program over 8 FGM strengths against a Python loop
of 8 one-strength programs (SASRec with RecBole's defaults, 3 epochs on ml-100k), medians of 3
after compiling both (``jaxrec.experiment.benchmarks.timed``); prints one JSON line
(docs/robustness.md).

Run: ``JAXREC_DATA_DIR=... python bench/window_strengths.py``
"""

from __future__ import annotations

import json

import jaxrec
from jaxrec.evaluate import model_chunk, split_ranking
from jaxrec.experiment.benchmarks import timed
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.robustness import perturbed_metrics
from jaxrec.robustness.windows import WindowLoss

EPS = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0]


def main() -> None:
    cfg = jaxrec.load_config("ml100k-sasrec", ["train.epochs=3"])
    r = jaxrec.run(cfg, progress=False, write=False)
    settings = ranking_settings(cfg, r.model)
    wide = split_ranking(r.split, "test", model_chunk(r.model, r.split.n_items, len(EPS)), **settings)
    narrow = split_ranking(r.split, "test", model_chunk(r.model, r.split.n_items, 1), **settings)
    loss = WindowLoss("ce")

    def sweep(ranking, eps):
        return perturbed_metrics(
            r.model, r.params, {}, None, ranking, eps=eps, ks=(10,), relative=True, window_loss=loss
        )

    def one():
        return sweep(wide, EPS)

    def loop():
        return [sweep(narrow, [e]) for e in EPS]

    got_one, got_loop = [], []
    _, s_one = timed(lambda: got_one.append(one()), 3)  # the first call compiles
    _, s_loop = timed(lambda: got_loop.append(loop()), 3)
    a, b = got_one[-1], got_loop[-1]
    diff = max(abs(a.rows[i]["ndcg@10"] - b[i].rows[0]["ndcg@10"]) for i in range(len(EPS)))
    print(
        json.dumps(
            {
                "one_program_s": s_one,
                "loop_s": s_loop,
                "ratio": s_loop / s_one,
                "max_ndcg_diff": diff,
                "clean_ndcg@10": a.clean["ndcg@10"],
                "ndcg@10": [round(x["ndcg@10"], 4) for x in a.rows],
            }
        )
    )


if __name__ == "__main__":
    main()
