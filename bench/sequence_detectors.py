"""The detectors against fake sequences, without training a victim: every (kind, seed) poisoned
set of ``configs/ml100k-sasrec-attack.yaml`` scored by ``pca``, ``degsim`` and ``repeats`` on the
users' event counts, thresholded at the configured false-positive rate on the trusted real users;
prints one JSON line per (kind, seed, detector) with the study's own figures (precision, recall,
ROC-AUC, the measured false-positive rate on the untrusted real users, real users flagged).

Run: ``JAXREC_DATA_DIR=... python bench/sequence_detectors.py [--set KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import json

from jaxrec.attacks.scenario import poisoned_sets
from jaxrec.config import load_config
from jaxrec.experiment.studies.attack import _detectors, check
from jaxrec.experiment.studies.attack_sequences import POISON, sequence_fakes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE overrides of the config")
    args = ap.parse_args()
    overrides = ["attack.detectors=[pca,degsim,repeats]", *args.set]
    cfg = load_config("configs/ml100k-sasrec-attack.yaml", overrides)
    plan = check(cfg, "configs")
    sc, a = plan.scenario, cfg.attack
    fakes, _ = sequence_fakes(cfg, sc, plan.max_len, lambda _: None)
    variants, _ = poisoned_sets(
        sc, fakes, a.kinds, a.seeds, None, _detectors(cfg, None, implicit=True), a.fpr, **POISON
    )
    for v in variants:
        if v.detection:
            row = {"kind": v.kind, "seed": v.seed, "fakes": v.count, "detector": v.defense, **v.detection}
            print(json.dumps({k: round(x, 4) if isinstance(x, float) else x for k, x in row.items()}))


if __name__ == "__main__":
    main()
