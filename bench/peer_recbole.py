"""The PyTorch peer, measured on this machine: RecBole 1.2.1 under the same protocols.

Runs in its own virtual environment (RecBole 1.2.1 needs NumPy 1.x and an older SciPy; jaxrec
does not depend on any of it):

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install torch==2.13.0 recbole==1.2.1 \\
        "numpy<2" "scipy==1.11.4" "pandas<2.3"
    P=/tmp/peer/bin/python
    $P bench/peer_recbole.py prepare --out /tmp/peer/data          # atomic files from $JAXREC_DATA_DIR
    $P bench/peer_recbole.py run NeuMF --epochs 10 --seed 2020     # ml-100k comparison protocol
    $P bench/peer_recbole.py split --seed 2020 --out /tmp/peer/split2020   # RecBole's exact split
    $P bench/peer_recbole.py gowalla --batches 40                  # LightGCN s/batch on Gowalla
    $P bench/peer_recbole.py sasrec --epochs 3                     # SASRec, leave-one-out, test per epoch

``run`` prints one JSON line (median seconds per training epoch after the first, test
Recall@20 / NDCG@20 of the final parameters, no early stopping). ``split`` writes RecBole's
train/valid/test pairs in raw ids as TSV, so jaxrec can train on the identical split
(``data.split=predefined``, see bench/README.md): that separates "different split draw" from
"different model". ``gowalla`` times single training steps (Gowalla protocol) and extrapolates
to an epoch; it says so in its output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

DATA = os.environ.get("PEER_DATA", "/tmp/peer/data")
WORK = os.environ.get("PEER_WORK", "/tmp/peer/work")  #: RecBole writes log dirs into the cwd


def prepare(out: str) -> None:
    """ml-100k.inter (every rating) and gowalla-lgcn.{train,valid,test}.inter (valid = test, used
    only for timing) from the original files in ``$JAXREC_DATA_DIR``."""
    src = os.environ["JAXREC_DATA_DIR"]
    os.makedirs(f"{out}/ml-100k", exist_ok=True)
    with open(f"{src}/ml-100k/u.data") as f, open(f"{out}/ml-100k/ml-100k.inter", "w") as g:
        g.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        g.writelines(f)
    os.makedirs(f"{out}/gowalla-lgcn", exist_ok=True)
    for name, parts in (("train", ("train",)), ("test", ("test", "valid"))):
        with open(f"{src}/gowalla/{name}.txt") as f:
            rows = [(p[0], it) for p in (line.split() for line in f) if len(p) > 1 for it in p[1:]]
        for part in parts:
            with open(f"{out}/gowalla-lgcn/gowalla-lgcn.{part}.inter", "w") as g:
                g.write("user_id:token\titem_id:token\n")
                g.writelines(f"{u}\t{i}\n" for u, i in rows)


def _ml100k_config(model: str, seed: int, epochs: int = 1, **settings):
    """RecBole's config for ``model`` on ml-100k: the comparison protocol's random 8:1:1 split and
    Recall / NDCG@20, or what ``settings`` replace (a sequential model's split and metrics)."""
    from recbole.config import Config

    return Config(
        model=model,
        dataset="ml-100k",
        config_dict={
            "data_path": DATA,
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
            "metrics": ["Recall", "NDCG"],
            "topk": [20],
            "valid_metric": "Recall@20",
            "epochs": epochs,
            "train_batch_size": 2048,
            "learning_rate": 1e-3,
            "eval_step": 10**6,
            "seed": seed,
            "reproducibility": True,
            "show_progress": False,
            "device": "cpu",
            "use_gpu": False,
            "checkpoint_dir": f"{WORK}/saved",
            **settings,
        },
    )


def run(model_name: str, epochs: int, seed: int) -> dict:
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(os.cpu_count() or 1)
    config = _ml100k_config(model_name, seed, epochs)
    init_seed(seed, True)
    train, _valid, test = data_preparation(config, create_dataset(config))
    init_seed(seed, True)
    model = get_model(model_name)(config, train.dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    secs = []
    for ep in range(epochs):
        t = time.perf_counter()
        trainer._train_epoch(train, ep, show_progress=False)
        secs.append(time.perf_counter() - t)
    t = time.perf_counter()
    res = trainer.evaluate(test, load_best_model=False, show_progress=False)
    return {
        "peer": "recbole-1.2.1",
        "model": model_name,
        "dataset": "ml-100k",
        "epochs": epochs,
        "seed": seed,
        "train_s_per_epoch_median": round(statistics.median(secs[1:] or secs), 4),
        "eval_s": round(time.perf_counter() - t, 3),
        "recall@20": round(float(res["recall@20"]), 4),
        "ndcg@20": round(float(res["ndcg@20"]), 4),
        "torch": torch.__version__,
    }


def sasrec(epochs: int, seed: int) -> list[dict]:
    """RecBole's SASRec on ml-100k with its defaults (hidden 64, inner 256, 2 layers, 2 heads,
    dropout 0.5 / 0.5, gelu, max length 50, CE, batch 2048, Adam 1e-3), the leave-one-out split
    in time order, full ranking of the test items after every epoch (the test is timed apart)."""
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(os.cpu_count() or 1)
    config = _ml100k_config(
        "SASRec",
        seed,
        epochs,
        eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        train_neg_sample_args=None,
        loss_type="CE",
        metrics=["Hit", "NDCG"],
        topk=[10],
        valid_metric="NDCG@10",
    )
    init_seed(seed, True)
    train, _valid, test = data_preparation(config, create_dataset(config))
    init_seed(seed, True)
    model = get_model("SASRec")(config, train.dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    rows, total = [], 0.0
    for ep in range(epochs):
        t = time.perf_counter()
        trainer._train_epoch(train, ep, show_progress=False)
        total += time.perf_counter() - t
        res = trainer.evaluate(test, load_best_model=False, show_progress=False)
        rows.append(
            {
                "peer": "recbole-1.2.1",
                "model": "SASRec",
                "epoch": ep + 1,
                "train_s": round(total, 2),
                "sequences": len(train.dataset),
                "ndcg@10": round(float(res["ndcg@10"]), 4),
                "hit@10": round(float(res["hit@10"]), 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def split(seed: int, out: str) -> dict:
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    config = _ml100k_config("BPR", seed)
    init_seed(seed, True)
    dataset = create_dataset(config)
    os.makedirs(out, exist_ok=True)
    sizes = {}
    for name, loader in zip(("train", "valid", "test"), data_preparation(config, dataset)):
        feat = loader.dataset.inter_feat
        users = dataset.id2token("user_id", feat["user_id"].numpy())
        items = dataset.id2token("item_id", feat["item_id"].numpy())
        with open(f"{out}/{name}.tsv", "w") as f:
            f.write("user\titem\n")
            f.writelines(f"{u}\t{i}\n" for u, i in zip(users, items))
        sizes[name] = len(users)
    return {"peer": "recbole-1.2.1", "split_seed": seed, "out": out, **sizes}


def gowalla(n_batches: int) -> dict:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    torch.set_num_threads(os.cpu_count() or 1)
    config = Config(
        model="LightGCN",
        dataset="gowalla-lgcn",
        config_dict={
            "data_path": DATA,
            "load_col": {"inter": ["user_id", "item_id"]},
            "benchmark_filename": ["train", "valid", "test"],
            "eval_args": {"split": None, "order": "RO", "group_by": "user", "mode": "full"},
            "n_layers": 3,
            "reg_weight": 1e-4,
            "embedding_size": 64,
            "train_batch_size": 2048,
            "learning_rate": 1e-3,
            "seed": 2020,
            "reproducibility": True,
            "show_progress": False,
            "device": "cpu",
            "use_gpu": False,
        },
    )
    init_seed(2020, True)
    train, _valid, _test = data_preparation(config, create_dataset(config))
    model = get_model("LightGCN")(config, train.dataset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    secs = []
    for k, inter in enumerate(train):
        t = time.perf_counter()
        opt.zero_grad()
        model.calculate_loss(inter).backward()
        opt.step()
        secs.append(time.perf_counter() - t)
        if k + 1 >= n_batches:
            break
    per = statistics.median(secs[2:])  # the first two steps warm up
    return {
        "peer": "recbole-1.2.1",
        "model": "LightGCN",
        "dataset": "gowalla",
        "batches_timed": len(secs) - 2,
        "s_per_batch_median": round(per, 4),
        "batches_per_epoch": len(train),
        "s_per_epoch_extrapolated": round(per * len(train), 1),
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--out", default=DATA)
    a = sub.add_parser("run")
    a.add_argument("model")
    a.add_argument("--epochs", type=int, required=True)
    a.add_argument("--seed", type=int, default=2020)
    a = sub.add_parser("sasrec")
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--seed", type=int, default=2020)
    a = sub.add_parser("split")
    a.add_argument("--seed", type=int, default=2020)
    a.add_argument("--out", required=True)
    a = sub.add_parser("gowalla")
    a.add_argument("--batches", type=int, default=40)
    args = p.parse_args()
    if args.cmd in ("prepare", "split"):  # paths given relative to where the command was typed
        args.out = os.path.abspath(args.out)
    if "JAXREC_DATA_DIR" in os.environ:
        os.environ["JAXREC_DATA_DIR"] = os.path.abspath(os.environ["JAXREC_DATA_DIR"])
    os.makedirs(WORK, exist_ok=True)
    os.chdir(WORK)
    if args.cmd == "prepare":
        prepare(args.out)
        return
    if args.cmd == "sasrec":  # one line per epoch, printed as they finish
        sasrec(args.epochs, args.seed)
        return
    row = {
        "run": lambda: run(args.model, args.epochs, args.seed),
        "split": lambda: split(args.seed, args.out),
        "gowalla": lambda: gowalla(args.batches),
    }[args.cmd]()
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
