"""Robustness: many strengths in one vmapped pass vs a loop, data-noise retraining as
members vs sequential runs, and the ml-100k robustness table. One JSON object per line.

  python bench/robustness.py strengths --config configs/ml100k-mf.yaml --n 32 [--epochs 1]
  python bench/robustness.py data --config configs/ml100k-mf.yaml --rates 0.05 0.1 0.2 0.3 --seeds 2
  python bench/robustness.py table --config configs/ml100k-robustness.yaml

``strengths`` runs each way in a fresh process (peak resident memory from ``getrusage``, and the
peak before the sweep started): ``one`` = one strength; ``vmap`` = ``n`` strengths in one
program, all vmapped together (ranking chunk sized by ``model_chunk`` for the vmapped width);
``auto`` = the same program with ``auto_batch``'s group size (what ``jaxrec robustness`` runs);
``loop`` = a Python loop over the same ``n`` strengths calling the compiled one-strength program
(each call also ranks the clean model, for the Jaccard reference, and takes the gradient). FGM,
relative eps spread over [0.05, 2]. The first call (compilation) is timed apart; then ``--reps``
timed calls, median (``--reps 0``: only the first call, for long runs such as Gowalla's); both
come from ``jaxrec.experiment.benchmarks.timed``. The victim is trained for ``--epochs`` epochs
(0: its initial parameters; ranking time does not depend on them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import first_and_median, machine, peak_mb  # bench/ is the script's directory, on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def strengths_one(config: str, n: int, mode: str, epochs: int, reps: int, method: str) -> dict:
    import numpy as np

    from jaxrec.config import load_config
    from jaxrec.evaluate import model_chunk, split_ranking
    from jaxrec.experiment import load_split, train_members
    from jaxrec.robustness import auto_batch, perturbed_metrics

    cfg = load_config(config)
    # 0 epochs (the initial parameters: ranking time does not depend on them) is refused in a
    # config, where it would report an untrained model as a result; here it is asked for
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    split = load_split(cfg.data)
    out = train_members([cfg], split, progress=False)
    tr = out.training
    params = out.fit.member(0).best_params
    eps = [float(e) for e in np.linspace(0.05, 2.0, n)]
    batch = {"vmap": n, "auto": auto_batch(tr.model, split.n_items, n)}.get(mode, 1)
    ranking = split_ranking(split, "test", model_chunk(tr.model, split.n_items, batch))
    ks = tuple(cfg.eval.ks)

    def once():
        if mode in ("vmap", "auto"):
            return perturbed_metrics(
                tr.model, params, tr.inputs, tr.data, ranking, eps=eps, method=method, ks=ks, relative=True, batch=batch
            ).rows
        if mode == "one":
            return perturbed_metrics(
                tr.model, params, tr.inputs, tr.data, ranking, eps=eps[:1], method=method, ks=ks, relative=True
            ).rows
        return [
            perturbed_metrics(
                tr.model, params, tr.inputs, tr.data, ranking, eps=[e], method=method, ks=ks, relative=True
            ).rows[0]
            for e in eps
        ]

    before = peak_mb()
    got = []
    first, median = first_and_median(lambda: got.append(once()), reps)
    rows = got[0]
    k = max(ks)
    return {
        "bench": "robustness-strengths",
        "config": Path(config).name,
        "dataset": cfg.data.dataset,
        "model": cfg.model.name,
        "mode": mode,
        "batch": batch,
        "method": method,
        "strengths": len(eps) if mode != "one" else 1,
        "users": ranking.n_users,
        "items": split.n_items,
        "chunk": int(ranking.users.shape[1]),
        "first_call_s": round(first, 3),
        "median_s": round(median, 3) if median is not None else None,
        "reps": reps,
        "peak_rss_mb_before_sweep": round(before),
        "peak_rss_mb": round(peak_mb()),
        f"ndcg@{k}_last": rows[-1][f"ndcg@{k}"],
        **machine(),
    }


def strengths(args) -> None:
    for mode in args.modes:  # a fresh process each: its own peak memory
        cmd = [
            sys.executable,
            __file__,
            "_strengths",
            "--config",
            args.config,
            "--n",
            str(args.n),
            "--mode",
            mode,
            "--epochs",
            str(args.epochs),
            "--reps",
            str(args.reps),
            "--method",
            args.method,
        ]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(line, flush=True)


def data(args) -> None:
    import jax

    from jaxrec.config import load_config
    from jaxrec.experiment import load_split, train_members
    from jaxrec.robustness import data_noise

    cfg = load_config(args.config, [f"train.epochs={args.epochs}"] if args.epochs else [])
    split = load_split(cfg.data)
    combos = [(r, s) for r in args.rates for s in range(args.seeds)]
    avoid = tuple(p for p in (split.valid, split.test) if p is not None)
    trains = [
        data_noise.perturb_data(split.train, args.kind, r, 1000 * s + i, avoid) for i, (r, s) in enumerate(combos)
    ]
    rounds = []
    for _ in range(args.rounds):  # alternate the two ways; wall includes compilation (each shape compiles)
        t0 = time.perf_counter()
        together = train_members([cfg] * len(trains), split, progress=False, trains=trains)
        jax.block_until_ready(together.fit.state.params)
        members_s = time.perf_counter() - t0
        t0, seq_epoch = time.perf_counter(), []
        for t in trains:
            one = train_members([cfg], split, progress=False, trains=[t])
            seq_epoch.append(one.timing["train_s_per_epoch_median"])
        seq_s = time.perf_counter() - t0
        rounds.append((members_s, seq_s, together.timing["train_s_per_epoch_median"], sum(seq_epoch)))
    med = lambda i: statistics.median(r[i] for r in rounds)  # noqa: E731
    print(
        json.dumps(
            {
                "bench": "robustness-data",
                "config": Path(args.config).name,
                "kind": args.kind,
                "rates": args.rates,
                "seeds": args.seeds,
                "members": len(trains),
                "epochs": cfg.train.epochs,
                "rounds": args.rounds,
                "members_wall_s": round(med(0), 2),
                "sequential_wall_s": round(med(1), 2),
                "wall_ratio": round(med(1) / med(0), 2),
                "members_epoch_s": round(med(2), 4),
                "sequential_epoch_s_sum": round(med(3), 4),
                "epoch_ratio": round(med(3) / med(2), 2),
                **machine(),
            }
        ),
        flush=True,
    )


def table(args) -> None:
    from jaxrec.config import load_config
    from jaxrec.experiment import run_robustness

    cfg = load_config(args.config, args.set)
    res = run_robustness(cfg, base_dir=Path(args.config).parent, progress=False)
    for s in res.summary + res.extras.data_summary:
        print(json.dumps({"bench": "robustness-table", "config": Path(args.config).name, **s}), flush=True)
    print(
        json.dumps(
            {
                "bench": "robustness-table-timing",
                "config": Path(args.config).name,
                **res.timing,
                "run_dir": str(res.run_dir),
                **machine(),
            }
        ),
        flush=True,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("strengths", "_strengths"):
        q = sub.add_parser(name)
        q.add_argument("--config", default=str(ROOT / "configs" / "ml100k-mf.yaml"))
        q.add_argument("--n", type=int, default=32)
        q.add_argument("--epochs", type=int, default=1)
        q.add_argument("--reps", type=int, default=3)
        q.add_argument("--method", default="fgm")
        if name == "strengths":
            q.add_argument("--modes", nargs="+", default=["one", "vmap", "auto", "loop"])
        else:
            q.add_argument("--mode", required=True)
    q = sub.add_parser("data")
    q.add_argument("--config", default=str(ROOT / "configs" / "ml100k-mf.yaml"))
    q.add_argument("--kind", default="drop")
    q.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    q.add_argument("--seeds", type=int, default=2)
    q.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: the config's)")
    q.add_argument("--rounds", type=int, default=1)
    q = sub.add_parser("table")
    q.add_argument("--config", default=str(ROOT / "configs" / "ml100k-robustness.yaml"))
    q.add_argument("--set", nargs="*", default=[])
    args = p.parse_args(argv)
    if args.cmd == "_strengths":
        print(json.dumps(strengths_one(args.config, args.n, args.mode, args.epochs, args.reps, args.method)))
    else:
        {"strengths": strengths, "data": data, "table": table}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
