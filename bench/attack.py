"""Poisoning attacks: one attack's retraining as members of one program vs sequential runs, and
the ml-100k attack table. One JSON object per line.

  python bench/attack.py retrain --victim 'configs/ml100k-mf.yaml train.epochs=40' --kind average [--filters]
  python bench/attack.py table --config configs/ml100k-attack.yaml            # runs the study
  python bench/attack.py table --results runs/ml100k-attack/results.json      # an earlier run

``retrain`` builds the poisoned training sets of ``configs/ml100k-attack.yaml`` for one attack
(every size x seed; with ``--filters`` also every detector's filtered copy, as ``jaxrec attack``
trains them) and trains them (a) as members of one program (what ``jaxrec attack`` runs) and (b)
one after the other, each as its own ``train_members`` run on its own unpadded data (what a
one-run-at-a-time tool does; every run compiles its own shapes). Times are wall clock,
compilation included; ``*_train_s`` excludes the compile of the first epoch. The members' and
the sequential runs' test metrics are compared (max absolute difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from common import machine  # bench/ is the script's directory, on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def retrain(args) -> dict:
    import numpy as np

    from jaxrec.attacks.scenario import fake_sets, poisoned_sets
    from jaxrec.config import load_config
    from jaxrec.experiment.studies import attack
    from jaxrec.experiment.training import train_members

    path, *victim_overrides = args.victim.split()
    entry = " ".join([str(Path(path).resolve()), *victim_overrides])
    overrides = [f"attack.kinds=[{args.kind}]", f"attack.victims=[{entry}]"]
    if not args.filters:
        overrides.append("attack.detectors=[]")
    cfg = load_config(args.config, overrides)
    plan = attack.check(cfg)
    ((label, vcfg),), setup, a = plan.victims, plan.scenario, cfg.attack
    generate = d_suspicion = None
    if args.kind == "gan" or "d" in a.detectors:
        generate, d_suspicion = attack._gan(cfg, setup, Path("/tmp/jaxrec-bench-attack"), False, lambda *x: None)
    fakes = fake_sets(setup, a.kinds, a.seeds, a.seed, a.intent, a.selected, generate)
    detectors = attack._detectors(cfg, d_suspicion)
    variants, _ = poisoned_sets(setup, fakes, a.kinds, a.seeds, a.threshold, detectors, a.fpr)
    cfgs = [
        dataclasses.replace(vcfg, train=dataclasses.replace(vcfg.train, seed=vcfg.train.seed + v.seed))
        for v in variants
    ]
    t0 = time.perf_counter()
    together = train_members(cfgs, setup.split, progress=False, trains=[v.train for v in variants])
    members_s = time.perf_counter() - t0
    seq_s, seq_train_s, diffs = 0.0, 0.0, []
    for m, (c, v) in enumerate(zip(cfgs, variants)):
        t0 = time.perf_counter()
        alone = train_members([c], setup.split, progress=False, trains=[v.train])
        seq_s += time.perf_counter() - t0
        secs = [h["seconds"] for h in alone.fit.history]
        seq_train_s += sum(secs[1:]) + float(np.median(secs[1:] or secs))
        diffs.append(max(abs(alone.metrics[0][k] - together.metrics[m][k]) for k in alone.metrics[0]))
    secs = [h["seconds"] for h in together.fit.history]
    return {
        "bench": "attack-retrain",
        "victim": label,
        "model": vcfg.model.name,
        "adv": vcfg.adv.method,
        "kind": args.kind,
        "filters": list(cfg.attack.detectors),
        "members": len(variants),
        "epochs": vcfg.train.epochs,
        "members_s": members_s,
        "members_train_s": sum(secs[1:]) + float(np.median(secs[1:] or secs)),
        "sequential_s": seq_s,
        "sequential_train_s": seq_train_s,
        "speedup": seq_s / members_s,
        "speedup_train": seq_train_s / (sum(secs[1:]) + float(np.median(secs[1:] or secs))),
        "max_metric_diff": float(max(diffs)),
        **machine(),
    }


def table(args) -> list[dict]:
    if args.results:
        payload = json.loads(Path(args.results).read_text())
    else:
        from jaxrec.config import load_config
        from jaxrec.experiment import run_attack

        cfg = load_config(args.config)
        res = run_attack(cfg, base_dir=Path(args.config).parent, progress=False)
        payload = json.loads((res.run_dir / "results.json").read_text())
    rows = [{"bench": "attack-table", **s} for s in payload["summary"]]
    rows += [{"bench": "attack-detection", **d} for d in payload["detection_summary"]]
    rows.append({"bench": "attack-table-timing", "targets": payload["targets"], **payload["timing"], **machine()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("retrain")
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k-attack.yaml"))
    p.add_argument(
        "--victim",
        default=f"{ROOT / 'configs' / 'ml100k-mf.yaml'} train.epochs=40",
        help="a victim config, optionally followed by KEY=VALUE overrides (as attack.victims)",
    )
    p.add_argument("--kind", default="average")
    p.add_argument("--filters", action="store_true", help="also every detector's filtered training set")
    p.add_argument("--out", default=str(HERE / "results" / "attack.jsonl"))
    p = sub.add_parser("table")
    p.add_argument("--config", default=str(ROOT / "configs" / "ml100k-attack.yaml"))
    p.add_argument("--results", help="results.json of an earlier jaxrec attack run")
    p.add_argument("--out", default=str(HERE / "results" / "attack-table.jsonl"))
    args = parser.parse_args()
    rows = [retrain(args)] if args.cmd == "retrain" else table(args)
    with open(args.out, "a") as f:
        for r in rows:
            line = json.dumps(r)
            f.write(line + "\n")
            if args.cmd == "retrain":
                print(line, flush=True)


if __name__ == "__main__":
    main()
