"""Poisoning attacks on recommenders: fake users injected into the training data.

* :mod:`~jaxrec.attacks.profiles` -- fake profiles' items (uniform or chosen by the GAN's G);
* :mod:`~jaxrec.attacks.shilling` -- rated profiles of the random, average, bandwagon and GAN
  attacks (Lam & Riedl 2004; Mobasher et al. 2007; AUSH, Lin et al. 2020);
* :mod:`~jaxrec.attacks.poison` -- targets, fake-user slots, injection, thresholding, all in one
  id space that never re-indexes;
* :mod:`~jaxrec.attacks.metrics` -- ``target_hr@K`` and ``target_score_shift`` from the one
  evaluator, vmapped over the members of a poisoned retraining;
* :mod:`~jaxrec.attacks.discrete` -- the one top-L discretiser of a profile, and its
  straight-through / Gumbel relaxations (the GAN trains through them);
* :mod:`~jaxrec.attacks.detection` -- every detector: PCA, RDMA, DegSim, D's suspicion,
  label-free thresholds, the one ROC-AUC, detection precision / recall / false-positive rate;
* :mod:`~jaxrec.attacks.fresh_detector` -- a classifier trained after the fact on real users vs
  fakes (cross-validated ROC-AUC).

Nothing here imports :mod:`jaxrec.adversarial` (a GAN's generator comes in as a function).
Retraining every (attack size x seed x defense) as members of one program, reports and plots:
:mod:`jaxrec.experiment.studies.attack` (``jaxrec attack``).
"""

from jaxrec.attacks.metrics import TargetRanking, members_outcomes, target_metrics, target_ranking
from jaxrec.attacks.poison import inject, pick_targets, positives, widen, widen_split
from jaxrec.attacks.shilling import KINDS, RatingStats, fake_profiles, rating_stats

__all__ = [
    "KINDS",
    "RatingStats",
    "TargetRanking",
    "fake_profiles",
    "inject",
    "members_outcomes",
    "pick_targets",
    "positives",
    "rating_stats",
    "target_metrics",
    "target_ranking",
    "widen",
    "widen_split",
]
