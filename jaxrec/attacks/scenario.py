"""A poisoning scenario on rated data (the attack protocol), from plain values: the fake-user slots,
the targets, what the attacker knows; the fake profiles of every attack and seed; and every
poisoned training set with its filtered copies, one per detector.

* :func:`scenario` -- the fixed parts: the rated split widened by the fake-user slots of the
  largest attack (:func:`~jaxrec.attacks.poison.widen_split`), its positives, the attack sizes as
  counts, the targets (raw ids, or drawn from a popularity pool), the attacker's rating
  statistics and filler size, the trusted real users (held out of every detector's fitting, they
  set its threshold);
* :func:`fake_sets` -- ``{(kind, seed, size): ratings [size, n_items]}`` of the heuristic attacks:
  a smaller attack takes the first profiles of the same draw, seeded by
  :func:`~jaxrec.attacks.shilling.profile_seed` (an optimized attack,
  :func:`jaxrec.attacks.optimized_fakes.scenario_fakes`, optimizes every size on its own);
* :func:`poisoned_sets` -- every (attack, size, seed) poisoned training set (defense ``none``)
  and, per detector, the same set without the users it flags at the trusted users' threshold,
  with the detector's figures; ROC curves at the largest size and seed 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxrec.attacks import detection, poison, profiles, shilling
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError


@dataclasses.dataclass
class Scenario:
    """The poisoning's fixed parts.

    Attributes:
      rated: the rated split widened by the fake-user slots; split: its positives (the victims'
        data); n_real: real users (fakes are users ``n_real ..``); counts: fake users per attack
        size; targets: ``[T]`` item indices; stats: what the attacker knows of the ratings (None
        for data without ratings: the sequence attacks, :mod:`jaxrec.attacks.sequences`);
        filler: items per profile besides the targets; trusted: ``[N_t]`` trusted real users;
        real_users: ``[N_r]`` real users with training data.
    """

    rated: Split
    split: Split
    n_real: int
    counts: list[int]
    targets: np.ndarray
    stats: shilling.RatingStats | None
    filler: int
    trusted: np.ndarray
    real_users: np.ndarray


def scenario(
    rated: Split,
    sizes: Sequence[float],
    threshold: float | None = 4.0,
    targets: Sequence = (),
    n_targets: int = 5,
    pool: str = "unpopular",
    seed: int = 0,
    filler: int = 0,
    trusted: float = 0.1,
) -> Scenario:
    """:class:`Scenario` on the rated split ``rated``; an error starts with the argument it is
    about (``sizes: ...``, ``targets: ...``).

    Args:
      sizes: fake users per attack, a share of the real users (< 1) or a count.
      threshold: ratings >= it become positives after injection (None: all).
      targets: raw item ids (:func:`~jaxrec.attacks.poison.target_indices`); empty: ``n_targets``
        drawn (seeded) from the ``pool`` half of the items with a training positive.
      filler: items per profile besides the targets (0: the mean real profile length).
      trusted: the share of real users trusted (at least 2).
    """
    n_real = rated.n_users
    counts = [int(round(s * n_real)) if s < 1 else int(s) for s in sizes]
    if min(counts) < 1:
        raise JaxrecError(f"sizes: {list(sizes)} of {n_real} users gives an attack without fake users")
    wide = poison.widen_split(rated, max(counts))
    split = poison.positives_split(wide, threshold)
    try:
        picked = (
            poison.target_indices(targets, rated.train)
            if len(targets)
            else poison.pick_targets(split.train, n_targets, pool, seed)
        )
    except JaxrecError as e:
        raise JaxrecError(f"targets: {e}") from None
    stats = None if rated.train.ratings is None else shilling.rating_stats(rated.train)
    real_users = np.flatnonzero(rated.train.user_counts() > 0)
    n_trusted = max(2, int(round(trusted * real_users.size)))
    chosen = np.sort(np.random.default_rng(seed).choice(real_users, n_trusted, replace=False))
    if filler > rated.n_items - len(picked):  # refused here, before any training, not when profiles are drawn
        raise JaxrecError(
            f"filler: {filler} items per profile, but only {rated.n_items - len(picked)} items are not targets"
        )
    lengths = rated.train.user_counts()
    filler = filler or int(round(lengths[lengths > 0].mean()))
    return Scenario(wide, split, n_real, counts, picked, stats, filler, chosen, real_users)


def fake_sets(
    sc: Scenario,
    kinds: Sequence[str],
    seeds: int,
    seed: int = 0,
    intent: str = "push",
    selected: int = 10,
    generate: Callable | None = None,
) -> dict:
    """``{(kind, s, count): ratings [count, n_items]}`` for every attack ``kind``, seed ``s < seeds``
    and count of the scenario: the first ``count`` profiles of one draw of the largest size per
    (kind, seed), from :func:`~jaxrec.attacks.shilling.profile_seed` of ``seed + s``. ``generate``:
    the GAN's ``sample(key, lengths)`` for the ``gan`` kind (a rated GAN's profiles carry its own
    ratings)."""
    n = max(sc.counts)
    if sc.stats is None:
        raise JaxrecError(f"{sc.rated.train.source}: the shilling attacks need rated interactions")
    lengths = np.full(sc.real_users.size, sc.filler)
    out = {}
    for s in range(seeds):
        for kind in kinds:
            draw = shilling.profile_seed(seed + s, kind)
            items = ratings = None
            if kind == "gan":
                items, drawn = profiles.gan_profiles(
                    generate, jax.random.key(draw), n, lengths, tuple(sc.targets), "mean"
                )
                items = np.asarray(items)
                ratings = None if drawn.ratings is None else np.asarray(drawn.ratings)
            sel = min(selected, sc.filler)
            drawn = shilling.fake_profiles(kind, n, sc.stats, sc.targets, sc.filler, draw, intent, sel, items, ratings)
            out.update({(kind, s, count): drawn[:count] for count in sc.counts})
    return out


@dataclasses.dataclass
class Variant:
    """One poisoned training set: its attack, size, seed, defense (``none`` or a detector) and
    positives; with a filter defense, the detector's figures."""

    kind: str
    count: int
    seed: int
    defense: str
    train: Interactions
    detection: dict | None = None


def poisoned_sets(
    sc: Scenario,
    fakes: dict,
    kinds: Sequence[str],
    seeds: int,
    threshold: float | None,
    detectors: dict[str, Callable],
    fpr: float = 0.05,
    inject: Callable = poison.inject,
    matrix: Callable = lambda inter: inter.dense(rated=True),
) -> tuple[list[Variant], dict]:
    """Every (attack, size, seed) poisoned training set (``fakes[kind, seed, size]``, as
    :func:`fake_sets` gives them) and, per detector of ``detectors``
    (``{name: suspicion(ratings [U, n_items]) -> [U]}``), its copy without the flagged users (the
    threshold at ``fpr`` on the trusted users); plus ROC curves ``{(kind, detector): (fpr, tpr,
    auc)}`` at the largest size and seed 0. A detector's figures add ``real_flagged``, the real
    users it dropped. ``inject(train, fakes, first_slot)`` adds the fakes
    (:func:`~jaxrec.attacks.poison.inject` for rated profiles,
    :func:`~jaxrec.attacks.sequences.inject_sequences` for fake sequences) and ``matrix(train)``
    is what the detectors read (the rating matrix; a sequence's event counts)."""
    out, roc = [], {}
    for kind in kinds:
        for count in sc.counts:
            for s in range(seeds):
                rated = inject(sc.rated.train, fakes[kind, s, count], sc.n_real)
                out.append(Variant(kind, count, s, "none", poison.positives(rated, threshold)))
                fake = np.arange(sc.n_real, sc.n_real + count)
                present = np.concatenate([sc.real_users, fake])
                r = matrix(rated)
                for name, suspicion in detectors.items():
                    scores = np.zeros(rated.n_users)
                    scores[present] = suspicion(r[present])
                    flagged = detection.flag(scores, present, sc.trusted, fpr)
                    figures = detection.user_detection_report(scores, fake, sc.real_users, sc.trusted, fpr)
                    figures["real_flagged"] = int(np.sum(flagged < sc.n_real))
                    kept = poison.positives(poison.without_users(rated, flagged), threshold)
                    out.append(Variant(kind, count, s, name, kept, figures))
                    if count == max(sc.counts) and s == 0:
                        labels = np.isin(present, fake)
                        roc[kind, name] = (*detection.roc_curve(scores[present], labels), figures["auc"])
    return out, roc
