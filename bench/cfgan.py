"""CFGAN vs MF-BPR vs most-popular on ml-100k (comparison protocol): one JSON object per line.

    JAXREC_DATA_DIR=/work/shared/data .venv/bin/python bench/cfgan.py
    .venv/bin/python bench/cfgan.py --epochs 100 --mf-epochs 20 100
    .venv/bin/python bench/cfgan.py --variants zr+pm --mf-epochs --report-every 25  # valid curve

CFGAN (Chae et al., CIKM 2018) runs with zero reconstruction (ZR) and partial masking (PM) each on
and off (4 variants), from configs/ml100k-cfgan.yaml; MF-BPR from configs/ml100k-mf.yaml; the
most-popular baseline scores every item by its training count. All go through the same
full-ranking evaluator (jaxrec.evaluate) on the same split, final parameters on test. Every
number is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import chex
import jax
import jax.numpy as jnp

from jaxrec.adversarial.cfgan import most_popular_scores
from jaxrec.config import load_config
from jaxrec.evaluate import check_ks, metric_sums, split_ranking
from jaxrec.experiment import load_split, run
from jaxrec.experiment.gans import train_cfgan

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "configs")
KEYS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _line(**fields) -> None:
    fields.update(backend=jax.default_backend(), machine=platform.node())
    print(json.dumps(fields), flush=True)


def _pick(metrics: dict) -> dict:
    return {k: round(float(metrics[k]), 5) for k in KEYS if k in metrics}


def most_popular(split, ks) -> dict:
    """Most-popular through the shared evaluator's :func:`metric_sums`."""
    pop = jnp.asarray(most_popular_scores(split))
    score_all = lambda users: jnp.broadcast_to(pop, (users.shape[0], pop.shape[0]))  # noqa: E731
    sums, n = jax.jit(lambda d: metric_sums(score_all, d, ks))(split_ranking(split, "test"))
    return {k: float(v / n) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=None, help="CFGAN epochs (default: the config's)")
    ap.add_argument("--mf-epochs", type=int, nargs="*", default=[20], help="MF-BPR epoch counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", default=["zr+pm", "zr", "pm", "none"])
    ap.add_argument(
        "--report-every",
        type=int,
        default=0,
        help="also validate every N epochs and print the validation curve (to choose epochs on "
        "validation, never on test); 0: no validation",
    )
    args = ap.parse_args()

    cf_over = [f"gan.seed={args.seed}", f"gan.report_every={args.report_every}"]
    cf_over += [f"gan.epochs={args.epochs}"] if args.epochs else []
    base = load_config(os.path.join(CONFIGS, "ml100k-cfgan.yaml"), cf_over)
    split = load_split(base.data)
    ks = check_ks(base.eval.ks, split.n_items)

    _line(model="most-popular", dataset="ml-100k", **_pick(most_popular(split, ks)))

    for e in args.mf_epochs:
        chex.clear_trace_counter()  # the training loop allows one trace per run; this is a new run
        mf = load_config(os.path.join(CONFIGS, "ml100k-mf.yaml"), [f"train.epochs={e}"])
        res = run(mf, progress=False, write=False, split=split)
        _line(model="mf-bpr", dataset="ml-100k", epochs=e, **_pick(res.metrics))

    for v in args.variants:
        zr, pm = "zr" in v.split("+"), "pm" in v.split("+")
        cfg = load_config(
            os.path.join(CONFIGS, "ml100k-cfgan.yaml"),
            [*cf_over, f"gan.zr={str(zr).lower()}", f"gan.pm={str(pm).lower()}"],
        )
        t0 = time.perf_counter()
        res = train_cfgan(cfg, split, validate=args.report_every > 0)
        secs = [h["seconds"] for h in res.fit.history]
        last = res.fit.history[-1]
        _line(
            model="cfgan",
            dataset="ml-100k",
            zr=zr,
            pm=pm,
            epochs=cfg.gan.epochs,
            seed=cfg.gan.seed,
            **_pick(res.metrics),
            d_real=round(last["d_real"], 4),
            d_fake=round(last["d_fake"], 4),
            train_s_per_epoch_median=round(sorted(secs)[len(secs) // 2], 4),
            total_s=round(time.perf_counter() - t0, 1),
            **(
                {
                    "valid_curve": [
                        [h["epoch"], round(h["valid/recall@20"], 5), round(h["valid/ndcg@20"], 5)]
                        for h in res.fit.history
                        if "valid/recall@20" in h
                    ]
                }
                if args.report_every
                else {}
            ),
        )


if __name__ == "__main__":
    main()
