"""Fake users of every kind, as injected, judged against held-out real users (``jaxrec gan``'s
comparison of the GAN's fakes with the classic attacks').

The users with data are divided, seeded, into training users and two held-out groups
(:func:`user_groups`): *reference* users (the real side of every figure) and *calibration* users
(model selection, the threshold of D as a detector, and the real users' own figures). Every kind
of fake user is made as the attack study injects it (ratings when the data has them) with the
same profile-length distribution (:func:`gan_fakes`, :func:`classic_fakes`), then judged against
the reference users (:func:`compare_fakes`):

* realism figures (:func:`jaxrec.adversarial.realism.realism_report`: popularity JSD, length KS,
  nearest-real cosine, diversity, rating JSD);
* the GAN's own D (mean probability of "real", and as a detector with its threshold set on the
  *calibration* users);
* a fresh detector trained after the fact on reference users vs the fakes
  (:func:`jaxrec.attacks.fresh_detector.fresh_detector`, cross-validated ROC-AUC; 0.5 =
  indistinguishable).
"""

from __future__ import annotations

import numpy as np

from jaxrec.adversarial import realism
from jaxrec.adversarial.gan_steps import d_view
from jaxrec.attacks import profiles, shilling
from jaxrec.attacks.detection import detection_report
from jaxrec.attacks.fresh_detector import fresh_detector
from jaxrec.errors import JaxrecError

CLASSIC = ("random", "average", "bandwagon")


def user_groups(users: np.ndarray, holdout: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded partition of the user ids ``users`` into ``train``, ``reference`` and ``calibration``
    groups (``holdout`` of the users held out, split in halves). An error starts with ``holdout``."""
    if not 0.0 < holdout < 1.0:
        raise JaxrecError(f"holdout must be in (0, 1), got {holdout}")
    users = np.random.default_rng(seed).permutation(np.asarray(users))
    n_out = int(round(holdout * users.size))
    if n_out < 2 or users.size - n_out < 1:
        raise JaxrecError(f"holdout: {holdout} of {users.size} users leaves no reference/calibration or training users")
    half = n_out // 2
    return {
        "train": np.sort(users[n_out:]),
        "reference": np.sort(users[:half]),
        "calibration": np.sort(users[half:n_out]),
    }


def gan_fakes(
    binary: np.ndarray, ratings: np.ndarray | None, stats: shilling.RatingStats | None, targets, seed: int
) -> np.ndarray:
    """The GAN's profiles as injected: ``binary [N, n_items]`` (targets in) when the data has no
    ratings; else rated by :func:`jaxrec.attacks.shilling.fake_profiles` -- with G's own
    ``ratings`` (a rated GAN) or the average attack's draw -- and targets at the maximum."""
    if stats is None:
        return binary
    filler = np.asarray(binary.sum(1) - len(targets), np.int64)
    return shilling.fake_profiles(
        "gan", len(binary), stats, targets, np.maximum(filler, 1), seed, filler_items=binary, filler_ratings=ratings
    )


def classic_fakes(
    stats: shilling.RatingStats | None, lengths: np.ndarray, n_items: int, targets, seed: int
) -> dict[str, np.ndarray]:
    """``{kind: [n, n_items]}`` of the random, average and bandwagon attacks (only random, 0/1,
    without ratings) with the filler sizes ``lengths [n]`` (the GAN's, so that every kind has the
    same profile lengths), each drawn from :func:`~jaxrec.attacks.shilling.profile_seed`."""
    lengths = np.asarray(lengths, np.int64)
    if stats is None:
        return {"random": profiles.uniform_profiles(shilling.profile_seed(seed, "random"), lengths, n_items, targets)}
    return {
        kind: shilling.fake_profiles(
            kind,
            lengths.size,
            stats,
            targets,
            lengths,
            shilling.profile_seed(seed, kind),
            selected=int(min(10, lengths.min())),
        )
        for kind in CLASSIC
    }


def compare_fakes(
    fakes: dict,
    reference: np.ndarray,
    calibration: np.ndarray,
    d_real: dict,
    levels: int,
    fpr: float,
    folds: int,
    seed: int,
) -> dict:
    """Figures of every kind of ``fakes`` (``{kind: [N, n_items]}`` as injected) against the
    ``reference`` users (same form); ``d_real`` holds D's probabilities of "real" ``[N]`` for every
    kind and for ``"reference"`` / ``"calibration"``; ``levels`` the data's rating levels (0:
    none). Keys per kind: ``realism_<kind>``, ``detector_<kind>`` (D), ``d_<kind>_profiles``,
    ``fresh_<kind>``; and the real users' own ``realism_real`` (calibration vs reference)."""
    out = {
        "d_real_reference": float(np.mean(d_real["reference"])),
        "d_real_calibration": float(np.mean(d_real["calibration"])),
        "realism_real": realism.realism_report(calibration, reference, levels),
    }
    for kind, x in fakes.items():
        out[f"realism_{kind}"] = realism.realism_report(x, reference, levels)
        out[f"d_{kind}_profiles"] = float(np.mean(d_real[kind]))
        out[f"detector_{kind}"] = detection_report(
            1 - d_real[kind], 1 - d_real["reference"], 1 - d_real["calibration"], fpr
        )
        fresh = fresh_detector(d_view(reference, levels), d_view(np.asarray(x), levels), folds=folds, seed=seed)
        out[f"fresh_{kind}"] = {"auc": fresh["auc"], "auc_folds": [float(a) for a in fresh["auc_folds"]]}
    return out
