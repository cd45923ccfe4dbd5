"""APR vs plain training on ml-100k (comparison protocol): clean accuracy, accuracy under FGM
perturbation of the embeddings, and the cost of an APR epoch. One JSON object per line.

  python bench/apr.py --models mf lightgcn neumf --seeds 4

Per model (configs ``ml100k-<plain>.yaml`` and ``ml100k-<apr>.yaml``):

1. **Grid on validation**: APR at ``adv.eps`` x ``adv.reg`` (relative eps), seed 0, as one
   program; the pair with the best validation NDCG@20 (final parameters) is kept.
2. **Plain vs APR, 4 seeds each** (two programs): plain training for as many epochs as APR's
   pretraining + adversarial epochs; test Recall@20 / NDCG@20 of the final parameters.
3. **Under attack**: every member's final parameters perturbed by per-row FGM on the embedding
   tables (absolute eps, the adversary's loss BPR over training triples) at each ``--attack-eps``;
   test NDCG@20 and the relative drop, mean ± sample std over seeds.
4. **Cost**: median seconds per member-epoch of both programs (APR's epochs include its
   pretraining epochs, so the adversarial epochs alone cost more than the mean shows; the
   ``apr_only`` run times APR with ``start_epoch = 0``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "mf": ("ml100k-mf", "ml100k-amf"),
    "lightgcn": ("ml100k-lightgcn", "ml100k-apr-lightgcn"),
    "neumf": ("ml100k-neumf", "ml100k-apr-neumf"),
}


def _ms(xs):
    return {"mean": round(statistics.mean(xs), 4), "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["mf", "lightgcn", "neumf"])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--grid-eps", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    p.add_argument("--grid-reg", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--attack-eps", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0])
    args = p.parse_args(argv)

    import jax

    from jaxrec.config import load_config
    from jaxrec.evaluate import split_ranking
    from jaxrec.experiment import load_split, train_members
    from jaxrec.robustness import perturbed_metrics

    split = None
    for name in args.models:
        plain_cfg, apr_cfg = (str(ROOT / "configs" / f"{c}.yaml") for c in CONFIGS[name])
        base = load_config(apr_cfg)
        split = split or load_split(base.data)
        epochs = base.train.epochs
        # 1. grid on validation (final parameters: one evaluation, at the last epoch)
        grid = list(itertools.product(args.grid_eps, args.grid_reg))
        gcfgs = [
            load_config(
                apr_cfg, [f"adv.eps={e}", f"adv.reg={r}", f"train.eval_every={epochs}", "train.monitor=ndcg@20"]
            )
            for e, r in grid
        ]
        t0 = time.perf_counter()
        g = train_members(gcfgs, split, progress=False)
        valid = [float(x) for x in jax.device_get(g.fit.tracker.best_score)]
        eps, reg = grid[max(range(len(grid)), key=lambda i: valid[i])]
        print(
            json.dumps(
                {
                    "bench": "apr-grid",
                    "model": name,
                    "grid": grid,
                    "valid_ndcg@20": [round(v, 4) for v in valid],
                    "picked": {"eps": eps, "reg": reg},
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            ),
            flush=True,
        )
        # 2. plain vs APR, seeds as members
        seeds = range(args.seeds)
        runs = {
            "plain": [load_config(plain_cfg, [f"train.epochs={epochs}", f"train.seed={s}"]) for s in seeds],
            "apr": [load_config(apr_cfg, [f"adv.eps={eps}", f"adv.reg={reg}", f"train.seed={s}"]) for s in seeds],
            "apr_only": [
                load_config(
                    apr_cfg, [f"adv.eps={eps}", f"adv.reg={reg}", "adv.start_epoch=0", "train.epochs=3", "train.seed=0"]
                )
            ],
        }
        test = split_ranking(split, "test", 100)
        row = {
            "bench": "apr",
            "model": name,
            "epochs": epochs,
            "start_epoch": base.adv.start_epoch,
            "eps": eps,
            "reg": reg,
            "relative": base.adv.relative,
            "seeds": args.seeds,
            "attack_eps": args.attack_eps,
        }
        for kind, cfgs in runs.items():
            out = train_members(cfgs, split, progress=False)
            row[f"{kind}_member_epoch_s"] = round(out.timing["train_s_per_epoch_median"] / len(cfgs), 4)
            if kind == "apr_only":
                continue
            row[f"{kind}_recall@20"] = _ms([m["recall@20"] for m in out.metrics])
            row[f"{kind}_ndcg@20"] = _ms([m["ndcg@20"] for m in out.metrics])
            attacked = []
            for m in range(len(cfgs)):
                params = out.fit.member(m).best_params
                res = perturbed_metrics(
                    out.training.model,
                    params,
                    out.training.inputs,
                    out.training.data,
                    test,
                    eps=args.attack_eps,
                    key=jax.random.key(m),
                )
                attacked.append([r["ndcg@20"] for r in res.rows])
            clean = [mm["ndcg@20"] for mm in out.metrics]
            row[f"{kind}_fgm_ndcg@20"] = [_ms([a[i] for a in attacked]) for i in range(len(args.attack_eps))]
            row[f"{kind}_fgm_drop"] = [
                _ms([1 - a[i] / c for a, c in zip(attacked, clean)]) for i in range(len(args.attack_eps))
            ]
        row["apr_vs_plain_epoch"] = round(row["apr_only_member_epoch_s"] / row["plain_member_epoch_s"], 2)
        row.update({"cpus": os.cpu_count(), "machine": platform.machine(), "backend": jax.default_backend()})
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
