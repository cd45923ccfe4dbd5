"""``jaxrec attack`` on sequence victims (SASRec and kin): fake *sequences* instead of rated
profiles, the rest of the attack protocol unchanged.

* The data are read as sequences (:func:`~jaxrec.experiment.data.load_split` with
  ``sequential``: no deduplication, leave-one-out by time) and every event is an interaction:
  ``attack.threshold`` must be null (thresholding ratings would cut events out of sequences).
* Fakes (:mod:`jaxrec.attacks.sequences`): ``random``, ``popular`` and ``bandwagon`` filler
  with the targets interleaved, lengths drawn from the real users' training lengths (or
  ``attack.filler`` events, at most the victims' ``max_len``); ``transition``
  (:mod:`jaxrec.attacks.transitions`) chooses the items before the targets on an item-transition
  surrogate of the training sequences (``optimized.k``, ``kappa``, ``steps``, ``lr``,
  ``candidates`` as its sources, ``order``, ``decay``), per (seed, size).
* Victims retrain on every poisoned training set as members of one program (sequence data
  variants: :func:`~jaxrec.train.sequence.sequence_shape`), seeds ``train.seed + s``, which the
  attacker never sees; target HR@K under full ranking over the real users who never interacted
  with a target, queried with their test-time histories.
* Detectors read the users' event counts (:data:`~jaxrec.attacks.detection.SEQUENCE_DETECTORS`:
  ``pca``, ``degsim`` and ``repeats``), thresholded on the trusted real users.
"""

from __future__ import annotations

import numpy as np

from jaxrec.attacks import transitions
from jaxrec.attacks.detection import SEQUENCE_DETECTORS
from jaxrec.attacks.scenario import Scenario
from jaxrec.attacks.sequences import SEQUENCE_ATTACKS, SEQUENCE_KINDS, fake_sequences, inject_sequences
from jaxrec.config import Config
from jaxrec.data.interactions import Interactions
from jaxrec.data.sequences import ordered_items, split_order
from jaxrec.errors import JaxrecError


def check_sequence_attack(cfg: Config, run_victims: list, n_items: int, n_targets: int) -> int:
    """Every ``attack.*`` setting a sequence attack cannot take, one keyed line each, before any
    work; returns the fakes' longest length (the victims' smallest ``max_len``)."""
    a = cfg.attack
    other = [k for k in a.kinds if k not in SEQUENCE_ATTACKS]
    if other:
        raise JaxrecError(
            f"attack.kinds: {other} attack rated profiles; sequence victims take one of {list(SEQUENCE_ATTACKS)}"
        )
    other = [d for d in a.detectors if d not in SEQUENCE_DETECTORS]
    if other:
        raise JaxrecError(
            f"attack.detectors: {other} read ratings or a GAN; on sequences choose from {list(SEQUENCE_DETECTORS)}"
        )
    if a.threshold is not None:
        raise JaxrecError(
            f"attack.threshold: {a.threshold} would drop events out of the sequences; sequence victims train on "
            "every event (set attack.threshold: null)"
        )
    if a.intent != "push":
        raise JaxrecError(f"attack.intent: {a.intent} lowers ratings; fake sequences push their targets (push)")
    if a.certified:
        raise JaxrecError("attack.certified: certified ensembles of sequence models are not available in attack")
    max_len = min(v.model.max_len for _, v in run_victims)
    if a.filler > max_len:
        raise JaxrecError(f"attack.filler: a fake length of {a.filler} is above the victims' max_len {max_len}")
    if "transition" in a.kinds:
        transitions.check_spec(transition_spec(cfg), n_items, range(n_targets))
    return max_len


def transition_spec(cfg: Config) -> transitions.TransitionAttack:
    """The transition attack's settings from ``optimized``."""
    o = cfg.optimized
    return transitions.TransitionAttack(
        order=o.order,
        decay=o.decay,
        k=o.k,
        kappa=o.kappa,
        sources=o.candidates or 10**9,
        steps=o.steps,
        lr=o.lr,
    )


def sequence_fakes(cfg: Config, sc: Scenario, max_len: int, log) -> tuple[dict, list]:
    """``{(kind, s, count): [count, max_len]}`` fake sequences of every kind, seed and size (a
    heuristic's smaller size takes the first fakes of one draw; the transition kind optimizes
    every (seed, size) on its own budget) and the transition ascent's rows."""
    a = cfg.attack
    train = sc.rated.train
    real = train.user_counts()[: sc.n_real]
    pop = train.item_counts()
    out, history = {}, []
    n = max(sc.counts)
    sur = None
    for s in range(a.seeds):
        for kind in a.kinds:
            draw = 7919 * (a.seed + s) + 100 + SEQUENCE_ATTACKS.index(kind)  # streams apart from the profiles'
            if kind in SEQUENCE_KINDS:
                seqs = fake_sequences(kind, n, real, pop, sc.targets, draw, max_len, a.selected, a.filler)
                out.update({(kind, s, count): seqs[:count] for count in sc.counts})
                continue
            if sur is None:
                sur = _surrogate(cfg, sc)
            for count in sc.counts:
                log(f"transition: optimizing {count} fake sequences (seed {s})")
                seqs, rows = transitions.transition_fakes(
                    sur, count, real, draw, max_len, transition_spec(cfg), a.filler
                )
                out[kind, s, count] = seqs
                history += [_outer_row(r, kind, s, count, cfg.optimized.k) for r in rows]
    return out, history


def _outer_row(r: dict, kind: str, seed: int, count: int, k: int) -> dict:
    """A transition ascent row in the attack report's outer-step columns."""
    return {
        "attack": kind,
        "step": r["step"],
        "seed": seed,
        "size": count,
        "outer_loss": -r["smoothed_hit"],
        "changed": 0,
        f"surrogate_target_hr@{k}": r["surrogate_hr"] if r["step"] else r["surrogate_hr_clean"],
        "budget": r["budget"],
    }


def _surrogate(cfg: Config, sc: Scenario) -> transitions.Surrogate:
    """The transition surrogate of the real training sequences, scored for the real users with
    a training history, eligible where they never trained on a target (the attacker sees the
    training part only)."""
    train = sc.rated.train
    indptr, items = ordered_items([train], split_order(sc.split))
    users = sc.real_users
    seen = np.zeros((train.n_users, len(sc.targets)), bool)
    for j, t in enumerate(sc.targets):
        seen[train.users[train.items == t], j] = True
    return transitions.fit_surrogate(
        indptr, items, train.n_items, users, ~seen[users], sc.targets, transition_spec(cfg)
    )


def event_counts(inter: Interactions) -> np.ndarray:
    """``[n_users, n_items]`` float32 events per (user, item): what the sequence detectors read."""
    out = np.zeros((inter.n_users, inter.n_items), np.float32)
    np.add.at(out, (inter.users, inter.items), 1.0)
    return out


#: :func:`~jaxrec.attacks.scenario.poisoned_sets`' arguments for fake sequences
POISON = {"inject": inject_sequences, "matrix": event_counts}
