"""``jaxrec attack``: fake users injected into the training data, victims retrained, defenses judged.

The attack protocol (ARLib's, ratings matter): the data keep their ratings through the split;
fake profiles carry ratings and join the training part as new users
(:mod:`jaxrec.attacks.poison`); then ratings >= ``attack.threshold`` become positives in every
part. Targets are ``attack.n_targets`` items drawn (seeded) from the unpopular half of the items
with a training positive, attacked jointly, or raw item ids.

1. Profiles per (attack, seed) for the largest size; a smaller size takes the first profiles of
   the same draw. The GAN attack's filler comes from a GAN (the config's ``gan`` section) trained
   on the real, untrusted users' training profiles; its D is one of the detectors.
2. Defenses: none; an APR-trained victim (a victim with ``adv.method: apr``); and filters: each
   detector of ``attack.detectors`` flags users, with a threshold at ``attack.fpr`` on the
   *trusted* real users (``attack.trusted`` of them, never flagged and held out of the GAN), and
   the victim retrains without the flagged users.
3. Per victim: its ``attack.seeds`` clean trainings run as members of one program; then per
   attack, every (size, seed, filter) is a member of one program on the engine's padded data
   variants (fake-user slots sized for the largest attack; an empty slot is a user without
   interactions). Member ``(size, seed)`` trains with ``train.seed + seed``, like clean member
   ``seed``, so the prediction shift compares equal initialisations.
4. Every member is tested: ``target_hr@K`` over the real users who never interacted with a
   target, ``target_score_shift`` against the clean member, and the clean test metrics
   (``recall@K`` ...) with their relative drop.

Outputs under ``<output_dir>/<name>/`` (see :mod:`jaxrec.experiment.attack_report`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from jaxrec.attacks import detectors as det
from jaxrec.attacks import poison, profiles, shilling
from jaxrec.attacks.metrics import members_outcomes, target_metrics, target_ranking
from jaxrec.config import CheckpointConfig, Config, validate
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import check_ks
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import check_writable, written
from jaxrec.experiment.robustness import seed_configs, victims, with_drops
from jaxrec.experiment.sweep import summarise
from jaxrec.experiment.training import train_members
from jaxrec.robustness.strengths import sweep_chunk

DETECTION_FIGURES = ("precision", "recall", "auc", "fpr", "flagged", "real_flagged")


@dataclasses.dataclass
class AttackResult:
    """What :func:`run_attack` measured: one row per (victim, attack, size, seed, defense),
    ``summary`` (mean ± std over seeds), per-detector ``detection`` rows, ROC curves, timings."""

    rows: list
    summary: list
    detection: list
    detection_summary: list
    roc: dict
    targets: list
    timing: dict
    run_dir: Path | None


def check(cfg: Config) -> None:
    """Every ``attack.*`` value, before anything loads or trains (single values' ranges are the
    config's rules; these checks relate several)."""
    validate(cfg)
    a = cfg.attack
    if not a.kinds:
        raise JaxrecError("attack.kinds is empty: nothing to attack with")
    if not a.sizes or any(s >= 1 and not float(s).is_integer() for s in a.sizes):
        raise JaxrecError(f"attack.sizes: give shares in (0, 1) or whole counts >= 1, got {list(a.sizes)}")
    for key in ("kinds", "detectors"):
        if len(set(getattr(a, key))) != len(getattr(a, key)):
            raise JaxrecError(f"attack.{key}: a value repeats in {list(getattr(a, key))}")
    if cfg.data.implicit_threshold is not None:
        raise JaxrecError(
            "data.implicit_threshold: the attack thresholds after injection; set attack.threshold instead"
        )


@dataclasses.dataclass
class Setup:
    """The poisoning's fixed parts: the rated split (widened by the fake-user slots), its
    positives, sizes, targets, the attacker's statistics and the trusted users."""

    rated: Split
    split: Split
    n_real: int
    counts: list[int]
    targets: np.ndarray
    stats: shilling.RatingStats
    filler: int
    trusted: np.ndarray
    real_users: np.ndarray


def prepare(cfg: Config, rated: Split) -> Setup:
    """:class:`Setup` of ``cfg.attack`` on the rated split ``rated``."""
    a = cfg.attack
    n_real = rated.n_users
    counts = [int(round(s * n_real)) if s < 1 else int(s) for s in a.sizes]
    if min(counts) < 1:
        raise JaxrecError(f"attack.sizes: {list(a.sizes)} of {n_real} users gives an attack without fake users")
    wide = poison.widen_split(rated, max(counts))
    split = poison.positives_split(wide, a.threshold)
    with config_key("attack.targets"):
        targets = (
            poison.target_indices(a.targets, rated.train)
            if a.targets
            else poison.pick_targets(split.train, a.n_targets, a.target_pool, a.seed)
        )
    stats = shilling.rating_stats(rated.train)
    filler = a.filler or int(round(stats.profile_length))
    real_users = np.flatnonzero(rated.train.user_counts() > 0)
    n_trusted = max(2, int(round(a.trusted * real_users.size)))
    trusted = np.sort(np.random.default_rng(a.seed).choice(real_users, n_trusted, replace=False))
    return Setup(wide, split, n_real, counts, targets, stats, filler, trusted, real_users)


def _gan(cfg: Config, setup: Setup, run_dir: Path, progress: bool, say):
    """Train the GAN of ``cfg.gan`` on the untrusted real users' training profiles (0/1, or
    ``rating / K`` with ``gan.rated``; with ``gan.select`` the epoch is selected against the trusted
    users): returns ``(sample(key, lengths [n]), suspicion(ratings [N, n_items]))``."""
    from jaxrec.adversarial.gan_training import d_view, kept, rating_levels, realism_valid, sample
    from jaxrec.experiment.gan import spec_from_config, suspicion, train_gan

    users = np.setdiff1d(setup.real_users, setup.trusted)
    with config_key("gan.rated"):
        levels = rating_levels(setup.rated.train) if cfg.gan.rated else 0
    ratings = det.rating_matrix(setup.rated.train)
    view = lambda r: d_view(r, levels)  # noqa: E731  (what D sees)
    spec = spec_from_config(cfg.gan, setup.rated.n_items, levels)
    valid = None
    if cfg.gan.select != "none":
        key = jax.random.fold_in(jax.random.key(cfg.gan.seed), 104)  # the validation fakes' noise
        lengths = np.full(max(setup.counts), setup.filler)
        folds = min(cfg.gan.fresh_folds, setup.trusted.size, lengths.size) if cfg.gan.select == "detector" else 0
        if cfg.gan.select == "detector" and folds < 2:
            raise JaxrecError(
                f"gan.select: detector needs >= 2 trusted users and fakes, got {setup.trusted.size} and {lengths.size}"
            )
        valid = realism_valid(view(ratings[setup.trusted]), lengths, key, levels, folds, cfg.gan.seed)
    ck_dir = run_dir / "gan-checkpoints"
    shutil.rmtree(ck_dir, ignore_errors=True)  # this study's scratch: an interrupted study's is stale
    gcfg = dataclasses.replace(cfg, checkpoint=CheckpointConfig(every=0, dir=str(ck_dir)))
    say(f"GAN: training G and D on {users.size} real users for {cfg.gan.epochs} epochs")
    fit = train_gan(gcfg, spec, view(ratings[users]), lambda *a: None, False, valid)
    params = kept(fit.selected)
    return (lambda key, lengths: sample(spec, params["g"], key, lengths)), (
        lambda r: suspicion(spec, params["d"], view(r))
    )


def make_profiles(cfg: Config, setup: Setup, generate=None) -> dict:
    """``{(kind, seed): ratings [max size, n_items]}`` for every attack and seed (``generate``: the
    GAN's ``sample(key, lengths)``; a rated GAN's profiles carry G's own ratings)."""
    a = cfg.attack
    n = max(setup.counts)
    lengths = np.full(setup.real_users.size, setup.filler)
    out = {}
    for s in range(a.seeds):
        for kind in a.kinds:
            seed = 7919 * (a.seed + s) + shilling.KINDS.index(kind)
            filler_items = filler_ratings = None
            if kind == "gan":
                filler_items, drawn = profiles.gan_profiles(
                    generate, jax.random.key(seed), n, lengths, tuple(setup.targets), "mean"
                )
                filler_items = np.asarray(filler_items)
                filler_ratings = None if drawn.ratings is None else np.asarray(drawn.ratings)
            with config_key("attack"):
                out[kind, s] = shilling.fake_profiles(
                    kind,
                    n,
                    setup.stats,
                    setup.targets,
                    setup.filler,
                    seed,
                    a.intent,
                    min(a.selected, setup.filler),
                    filler_items,
                    filler_ratings,
                )
    return out


@dataclasses.dataclass
class Variant:
    """One poisoned training set: its attack, size, seed, defense and positives; with a filter
    defense, the detector's figures."""

    kind: str
    count: int
    seed: int
    defense: str
    train: object
    detection: dict | None = None


def make_variants(cfg: Config, setup: Setup, fakes: dict, d_suspicion=None) -> tuple[list[Variant], dict]:
    """Every (attack, size, seed) poisoned training set and, per detector, its filtered copy;
    plus ROC curves ``{(kind, detector): (fpr, tpr, auc)}`` at the largest size and seed 0."""
    a = cfg.attack
    out, roc = [], {}
    for kind in a.kinds:
        for count in setup.counts:
            for s in range(a.seeds):
                rated = poison.inject(setup.rated.train, fakes[kind, s][:count], setup.n_real)
                out.append(Variant(kind, count, s, "none", poison.positives(rated, a.threshold)))
                fake = np.arange(setup.n_real, setup.n_real + count)
                present = np.concatenate([setup.real_users, fake])
                r = det.rating_matrix(rated)
                for name in a.detectors:
                    scores = np.zeros(rated.n_users)
                    with config_key(f"attack.detectors: {name}"):
                        scores[present] = (
                            d_suspicion(r[present])
                            if name == "d"
                            else det.suspicion(name, r[present], a.pca_components, a.degsim_k)
                        )
                    flagged = det.flag(scores, present, setup.trusted, a.fpr)
                    figures = det.judge(scores, fake, setup.real_users, setup.trusted, a.fpr)
                    figures["real_flagged"] = int(np.sum(flagged < setup.n_real))
                    out.append(
                        Variant(
                            kind,
                            count,
                            s,
                            name,
                            poison.positives(poison.without_users(rated, flagged), a.threshold),
                            figures,
                        )
                    )
                    if count == max(setup.counts) and s == 0:
                        labels = np.isin(present, fake)
                        roc[kind, name] = (*det.roc_curve(scores[present], labels), figures["auc"])
    return out, roc


def attack_victim(
    label: str, vcfg: Config, setup: Setup, variants: list[Variant], ks, progress: bool, say
) -> tuple[list, dict]:
    """Rows of one victim: its clean members, then one program per attack (see the module
    docstring); and its timings."""
    a = vcfg.attack
    apr = vcfg.adv.method != "none"
    base = {"victim": label, "model": vcfg.model.name}
    timing: dict = {}
    seeds = seed_configs(vcfg, a.seeds)
    say(f"{label}: training {a.seeds} clean seed(s) as members of one program")
    t0 = time.perf_counter()
    clean = train_members(seeds, setup.split, progress=progress)
    timing["clean_train_s"] = time.perf_counter() - t0
    interacted = [p for p in (setup.rated.train, setup.rated.valid, setup.rated.test) if p is not None]
    rows = []

    def outcomes(run):
        n = len(run.configs)
        ranking = target_ranking(
            setup.split.train,
            interacted,
            setup.targets,
            setup.n_real,
            vcfg.eval.chunk or sweep_chunk(run.training.model, setup.split.n_items, n),
        )
        best = run.fit.tracker.best if run.fit.tracker.best is not None else run.fit.state.params
        return ranking, members_outcomes(
            run.training.model, best, run.training.inputs, ranking, ks, run.training.data_batched
        )

    ranking, clean_out = outcomes(clean)
    clean_scores = clean_out["score"]
    for s in range(a.seeds):
        one = {k: v[s] for k, v in clean_out.items()}
        rows.append(
            {
                **base,
                "defense": "apr" if apr else "none",
                "attack": "clean",
                "size": 0,
                "share": 0.0,
                "seed": s,
                **with_drops(dict(clean.metrics[s]), clean.metrics[s], ks),
                **target_metrics(one, ranking, clean_scores[s]),
                "failed": clean.fit.member(s).failed,
            }
        )
    for kind in a.kinds:
        mine = [v for v in variants if v.kind == kind and (v.defense == "none" or not apr)]
        say(f"{label}: {kind} attack, {len(mine)} poisoned training sets as members of one program")
        t0 = time.perf_counter()
        run = train_members(
            [seeds[v.seed] for v in mine], setup.split, progress=progress, trains=[v.train for v in mine]
        )
        timing[f"{kind}_train_s"] = time.perf_counter() - t0
        _, out = outcomes(run)
        for m, v in enumerate(mine):
            one = {k: x[m] for k, x in out.items()}
            defense = "apr" if apr else v.defense
            rows.append(
                {
                    **base,
                    "defense": defense,
                    "attack": kind,
                    "size": v.count,
                    "share": v.count / setup.n_real,
                    "seed": v.seed,
                    **with_drops(dict(run.metrics[m]), clean.metrics[v.seed], ks),
                    **target_metrics(one, ranking, clean_scores[v.seed]),
                    **({f"detect_{k}": x for k, x in v.detection.items()} if v.detection and not apr else {}),
                    "failed": run.fit.member(m).failed,
                }
            )
        timing[f"{kind}_members"] = len(mine)
    return rows, timing


def run_attack(
    cfg: Config,
    base_dir: str | Path = ".",
    progress: bool = True,
    write: bool = True,
    rated: Split | None = None,
    console=None,
    overwrite: bool = False,
) -> AttackResult:
    """Run the attack study ``cfg.attack`` (see the module docstring); ``rated``: the split with
    its ratings (default: loaded from ``cfg.data``, ratings kept)."""
    from jaxrec.experiment.attack_report import write_report

    check(cfg)
    run_victims = victims(cfg, base_dir, "attack")
    if write:
        check_writable(cfg, "attack", overwrite)
    say = console.log if console is not None and progress else (lambda *a, **k: None)
    t_all = time.perf_counter()
    rated = load_split(cfg.data, keep_ratings=True) if rated is None else rated
    setup = prepare(cfg, rated)
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, setup.split.n_items)
    timing: dict = {"victims": {}}
    run_dir = Path(cfg.output_dir) / cfg.name
    generate = d_suspicion = None
    if "gan" in cfg.attack.kinds or "d" in cfg.attack.detectors:
        t0 = time.perf_counter()
        generate, d_suspicion = _gan(cfg, setup, run_dir, progress, say)
        timing["gan_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fakes = make_profiles(cfg, setup, generate)
    variants, roc = make_variants(cfg, setup, fakes, d_suspicion)
    timing["profiles_and_detectors_s"] = time.perf_counter() - t0
    say(f"{len(variants)} poisoned training sets; targets {setup.rated.train.item_ids[setup.targets].tolist()}")
    rows = []
    for label, vcfg in run_victims:
        vrows, timing["victims"][label] = attack_victim(label, vcfg, setup, variants, ks, progress, say)
        rows += vrows
    timing["wall_s"] = time.perf_counter() - t_all
    keys = ["model", "defense", "attack", "size"]
    summary = summarise(rows, keys, ("target_score_shift", "target_score"))
    detection = [
        {"attack": v.kind, "size": v.count, "seed": v.seed, "detector": v.defense, **v.detection, "failed": False}
        for v in variants
        if v.detection
    ]
    det_summary = summarise(detection, ["detector", "attack", "size"], DETECTION_FIGURES) if detection else []
    targets = [t.item() if hasattr(t, "item") else t for t in setup.rated.train.item_ids[setup.targets]]
    result = AttackResult(rows, summary, detection, det_summary, roc, targets, timing, None)
    if write:
        result.run_dir = written(cfg, write_report, cfg, result, setup)
    return result
