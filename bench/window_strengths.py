"""Sequence victims: one perturbed_metrics program over 8 FGM strengths against a Python loop of 8
one-strength programs (SASRec, RecBole's defaults, 3 epochs on ml-100k), medians of 3; prints one
JSON line (docs/robustness.md). Run: JAXREC_DATA_DIR=... python bench/window_strengths.py"""

import time, json, numpy as np, jax, jaxrec
from jaxrec.robustness import perturbed_metrics
from jaxrec.robustness.windows import WindowLoss
from jaxrec.evaluate import split_ranking, model_chunk
from jaxrec.experiment.sequences import ranking_settings

cfg = jaxrec.load_config("ml100k-sasrec", ["train.epochs=3"])
r = jaxrec.run(cfg, progress=False, write=False)
eps = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0]
rk = split_ranking(r.split, "test", model_chunk(r.model, r.split.n_items, len(eps)), **ranking_settings(cfg, r.model))
rk1 = split_ranking(r.split, "test", model_chunk(r.model, r.split.n_items, 1), **ranking_settings(cfg, r.model))
wl = WindowLoss("ce")


def one():
    return perturbed_metrics(r.model, r.params, {}, None, rk, eps, "fgm", (10,), True, window_loss=wl)


def loop():
    return [perturbed_metrics(r.model, r.params, {}, None, rk1, [e], "fgm", (10,), True, window_loss=wl) for e in eps]


one()
loop()  # compile both
t1, t2 = [], []
for _ in range(3):
    t = time.perf_counter()
    a = one()
    t1.append(time.perf_counter() - t)
    t = time.perf_counter()
    b = loop()
    t2.append(time.perf_counter() - t)
diff = max(abs(a.rows[i]["ndcg@10"] - b[i].rows[0]["ndcg@10"]) for i in range(len(eps)))
print(
    json.dumps(
        {
            "one_program_s": float(np.median(t1)),
            "loop_s": float(np.median(t2)),
            "ratio": float(np.median(t2) / np.median(t1)),
            "max_ndcg_diff": diff,
            "clean_ndcg@10": a.clean["ndcg@10"],
            "ndcg@10": [round(x["ndcg@10"], 4) for x in a.rows],
        }
    )
)
