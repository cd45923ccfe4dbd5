"""How real do the GAN's fake users look, next to the classic attacks'? One JSON object per line.

    JAXREC_DATA_DIR=/work/shared/data .venv/bin/python bench/gan_realism.py
    .venv/bin/python bench/gan_realism.py --seeds 0 --configs ml100k-gan.yaml --set gan.epochs=20

For each seed (``gan.seed``: GAN initialisation and the held-out user groups) and each config
(default: the seed's GAN, ``configs/ml100k-gan.yaml``, and the stabilised one,
``configs/ml100k-gan-stable.yaml``), ``jaxrec gan`` is run end to end (``run_gan``, nothing
written): the GAN's fakes and the random / average / bandwagon profiles (same length
distribution, rated as injected) are compared with the held-out reference users. A line per
(config, seed, kind): popularity JSD, profile-length KS, nearest-real cosine, diversity (mean
pairwise Jaccard), rating JSD, the fresh detector's ROC-AUC, D's mean probability of "real"; the
real users' own values; training seconds (the epochs' sum) and the selected epoch. The last
lines are the mean ± std table over seeds (markdown) on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from jaxrec.config import load_config
from jaxrec.experiment import run_gan

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "configs")
FIGURES = ("popularity_jsd", "length_ks", "nn_cosine", "diversity", "rating_jsd")


def rows_of(name: str, seed: int, res, seconds: float) -> list[dict]:
    m = res.extras.metrics
    kinds = [k[len("realism_") :] for k in m if k.startswith("realism_") and k != "realism_real"]
    out = []
    for kind in kinds:
        label = f"{name}:gan" if kind == "gan" else kind
        row = {"bench": "gan-realism", "config": name, "kind": label, "seed": seed}
        row.update({f: round(m[f"realism_{kind}"][f], 4) for f in FIGURES if f in m[f"realism_{kind}"]})
        row.update(fresh_auc=round(m[f"fresh_{kind}"]["auc"], 4), d_real=round(m[f"d_{kind}_profiles"], 4))
        out.append(row)
    real = {"bench": "gan-realism", "config": name, "kind": "real", "seed": seed}
    real.update({f: round(m["realism_real"][f], 4) for f in FIGURES if f in m["realism_real"]})
    real.update(
        nn_cosine=round(m["realism_real"]["nn_cosine"], 4),
        diversity=round(m["realism_real"]["diversity_real"], 4),
        d_real=round(m["d_real_reference"], 4),
    )
    out.append(real)
    train_s = sum(h["seconds"] for h in res.extras.history)
    out.append(
        {
            "bench": "gan-time",
            "config": name,
            "seed": seed,
            "epochs": len(res.extras.history),
            "train_s": round(train_s, 2),
            "epoch_s": round(float(np.median([h["seconds"] for h in res.history])), 4),
            "wall_s": round(seconds, 2),
            "selected_epoch": m["selection"]["epoch"],
            "criterion": m["selection"]["criterion"],
        }
    )
    return out


def table(rows: list[dict]) -> str:
    kinds = list(dict.fromkeys(r["kind"] for r in rows if r["bench"] == "gan-realism"))
    cols = [*FIGURES, "fresh_auc", "d_real"]
    lines = ["| fakes | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for kind in kinds:
        sel = [r for r in rows if r.get("kind") == kind]
        cells = []
        for c in cols:
            v = [r[c] for r in sel if c in r]
            cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}" if v else "")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for name in dict.fromkeys(r["config"] for r in rows if r["bench"] == "gan-time"):
        t = [r for r in rows if r["bench"] == "gan-time" and r["config"] == name]
        lines.append(
            f"\n{name}: training {np.mean([r['train_s'] for r in t]):.1f} s "
            f"(median epoch {np.mean([r['epoch_s'] for r in t]):.3f} s), selected epochs "
            f"{[r['selected_epoch'] for r in t]}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--configs", nargs="*", default=["ml100k-gan.yaml", "ml100k-gan-stable.yaml"])
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="a config override for every run")
    args = ap.parse_args()
    rows = []
    dedup = set()
    for seed in args.seeds:
        for conf in args.configs:
            cfg = load_config(os.path.join(CONFIGS, conf), [*args.overrides, f"gan.seed={seed}"])
            t0 = time.perf_counter()
            res = run_gan(cfg, progress=False, write=False)
            for row in rows_of(conf.removesuffix(".yaml"), seed, res, time.perf_counter() - t0):
                key = (row.get("kind"), row["seed"], row["bench"])
                if row.get("kind") and not row["kind"].endswith(":gan") and key in dedup:
                    continue  # the classic attacks and real users: the same for every config of a seed
                dedup.add(key)
                row.update(backend=jax.default_backend(), cpus=os.cpu_count(), machine=platform.machine())
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(table(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
