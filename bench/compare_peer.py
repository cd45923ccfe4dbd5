"""jaxrec vs its PyTorch peer (RecBole 1.2.1) on this machine, interleaved, with ratios.

    python bench/compare_peer.py --peer-python /tmp/peer/bin/python --rounds 2 \\
        --out bench/results/compare-peer.jsonl

Needs the peer's environment and data (see ``bench/peer_recbole.py``). For every model of the
ml-100k comparison protocol it alternates ``rounds`` peer runs and ``rounds`` jaxrec runs (same
epochs, each in a fresh process) and prints one JSON line per run and a summary line per model:
median seconds per epoch of both and their ratio, each side's test Recall@20 / NDCG@20 on its
own split draw. ``--same-split`` then trains jaxrec on RecBole's exact split (seed 2020) with
``--seeds`` training seeds, so accuracy is compared on identical data. ``--gowalla`` adds the
Gowalla protocol LightGCN: the peer's seconds per step extrapolated to an epoch and jaxrec's
measured epoch (``bench/gowalla_curve.py``, 2 epochs). ``--sasrec`` runs RecBole's SASRec and
jaxrec's (``configs/ml100k-sasrec.yaml``, ``bench/sasrec_curve.py``) one after the other,
``--rounds`` times, each with the test ranked after every epoch, and reports time to accuracy:
jaxrec's training seconds to reach the peer's NDCG@10 of each of its epochs, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
#: RecBole model name -> (jaxrec model in bench.py's ml-100k cases, epochs of the comparison)
MODELS = {"BPR": ("mf", 20), "NeuMF": ("neumf", 10), "LightGCN": ("lightgcn", 20), "NGCF": ("ngcf", 20)}


def _json_lines(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def peer_run(peer_py: str, model: str, epochs: int, seed: int = 2020) -> dict:
    return _json_lines(
        [peer_py, f"{HERE}/peer_recbole.py", "run", model, "--epochs", str(epochs), "--seed", str(seed)]
    )[-1]


def jaxrec_run(model: str, overrides: list[str] = ()) -> dict:
    cmd = [PY, f"{HERE}/bench.py", "--models", MODELS[model][0], "--datasets", "ml-100k", "--eval-repeats", "3"]
    for o in overrides:
        cmd += ["--set", o]
    return _json_lines(cmd)[-1]


def emit(row: dict, out) -> None:
    print(json.dumps(row), flush=True)
    if out:
        out.write(json.dumps(row) + "\n")
        out.flush()


def sasrec_time_to_accuracy(args, out) -> None:
    """Interleaved rounds of RecBole's SASRec and jaxrec's; per round, for each peer epoch, the
    training seconds jaxrec needs to reach the peer's test NDCG@10 there (None: not reached)."""
    for r in range(args.rounds):
        peer = _json_lines([args.peer_python, f"{HERE}/peer_recbole.py", "sasrec", "--epochs", str(args.sasrec_epochs)])
        for row in peer:
            emit({"side": "peer", "round": r, **row}, out)
        ours = _json_lines([PY, f"{HERE}/sasrec_curve.py", "--epochs", str(args.jaxrec_epochs)])
        for row in ours:
            emit({"round": r, **row}, out)
        for p_row in peer:
            hit = next((o for o in ours if o["ndcg@10"] >= p_row["ndcg@10"]), None)
            emit(
                {
                    "summary": "SASRec time to accuracy",
                    "round": r,
                    "peer_epoch": p_row["epoch"],
                    "peer_train_s": p_row["train_s"],
                    "peer_ndcg@10": p_row["ndcg@10"],
                    "jaxrec_epoch": hit and hit["epoch"],
                    "jaxrec_train_s": hit and hit["train_s"],
                    "speedup": hit and round(p_row["train_s"] / max(hit["train_s"], 1e-9), 1),
                    "jaxrec_best_ndcg@10": max(o["ndcg@10"] for o in ours),
                    "jaxrec_best_hit@10": max(o["hit@10"] for o in ours),
                },
                out,
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", required=True, help="python of the RecBole environment")
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--same-split", action="store_true")
    p.add_argument("--seeds", type=int, default=4, help="jaxrec training seeds on the peer's split")
    p.add_argument("--gowalla", action="store_true")
    p.add_argument("--sasrec", action="store_true", help="only SASRec: time to accuracy (see above)")
    p.add_argument("--sasrec-epochs", type=int, default=3, help="the peer's epochs")
    p.add_argument("--jaxrec-epochs", type=int, default=30, help="jaxrec's epochs (its curve)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = open(args.out, "a") if args.out else None
    if args.sasrec:
        sasrec_time_to_accuracy(args, out)
        return 0

    for model in args.models:
        _, epochs = MODELS[model]
        peer, ours = [], []
        for _ in range(args.rounds):
            peer.append(peer_run(args.peer_python, model, epochs))
            emit({"side": "peer", **peer[-1]}, out)
            ours.append(jaxrec_run(model))
            emit({"side": "jaxrec", **ours[-1]}, out)
        p_s = statistics.median(r["train_s_per_epoch_median"] for r in peer)
        o_s = statistics.median(r["train_s_per_epoch_median"] for r in ours)
        emit(
            {
                "summary": model,
                "epochs": epochs,
                "peer_s_per_epoch": p_s,
                "jaxrec_s_per_epoch": o_s,
                "speedup": round(p_s / o_s, 2),
                "peer_eval_s": statistics.median(r["eval_s"] for r in peer),
                "jaxrec_eval_s": statistics.median(r["eval_s"] for r in ours),
                "peer_recall@20": peer[0]["recall@20"],
                "peer_ndcg@20": peer[0]["ndcg@20"],
                "jaxrec_recall@20": ours[0]["recall@20"],
                "jaxrec_ndcg@20": ours[0]["ndcg@20"],
            },
            out,
        )

    if args.same_split:
        tmp = tempfile.mkdtemp(prefix="recbole-split-")
        _json_lines([args.peer_python, f"{HERE}/peer_recbole.py", "split", "--seed", "2020", "--out", tmp])
        split = [
            f"data.dataset={tmp}/train.tsv",
            f"data.valid_path={tmp}/valid.tsv",
            f"data.test_path={tmp}/test.tsv",
            "data.split=predefined",
            "data.user_col=user",
            "data.item_col=item",
        ]
        for model in args.models:
            rows = [jaxrec_run(model, [*split, f"train.seed={s}"]) for s in range(args.seeds)]
            rec = [r["recall@20"] for r in rows]
            ndcg = [r["ndcg@20"] for r in rows]
            emit(
                {
                    "same_split": model,
                    "split": "recbole-1.2.1 RS 8:1:1 seed 2020",
                    "seeds": args.seeds,
                    "jaxrec_recall@20_mean": round(statistics.mean(rec), 4),
                    "jaxrec_recall@20_std": round(statistics.pstdev(rec), 4),
                    "jaxrec_ndcg@20_mean": round(statistics.mean(ndcg), 4),
                    "jaxrec_ndcg@20_std": round(statistics.pstdev(ndcg), 4),
                    "jaxrec_runs": [[r["recall@20"], r["ndcg@20"]] for r in rows],
                },
                out,
            )

    if args.gowalla:
        peer = _json_lines([args.peer_python, f"{HERE}/peer_recbole.py", "gowalla", "--batches", "40"])[-1]
        emit({"side": "peer", **peer}, out)
        curve = _json_lines([PY, f"{HERE}/gowalla_curve.py", "--budget-s", "1e9", "--max-epochs", "2"])
        ours_s = curve[-1]["seconds"] - curve[0]["seconds"]  # epoch 2 alone: no compilation
        emit(
            {
                "side": "jaxrec",
                "dataset": "gowalla",
                "model": "lightgcn",
                "epoch2_s": round(ours_s, 2),
                "recall@20": curve[-1]["recall@20"],
                "ndcg@20": curve[-1]["ndcg@20"],
            },
            out,
        )
        emit(
            {
                "summary": "LightGCN-gowalla",
                "peer_s_per_epoch_extrapolated": peer["s_per_epoch_extrapolated"],
                "jaxrec_s_per_epoch": round(ours_s, 2),
                "speedup": round(peer["s_per_epoch_extrapolated"] / ours_s, 2),
            },
            out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
