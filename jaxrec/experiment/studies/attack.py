"""``jaxrec attack``: fake users injected into the training data, victims retrained, defenses judged.

The attack protocol (ARLib's, ratings matter): the data keep their ratings through the split;
fake profiles carry ratings and join the training part as new users
(:mod:`jaxrec.attacks.poison`); then ratings >= ``attack.threshold`` become positives in every
part. Targets are ``attack.n_targets`` items drawn (seeded) from the unpopular half of the items
with a training positive, attacked jointly, or raw item ids (``[50]`` for MovieLens, ``[i3]``).

1. Profiles per (attack, seed) for the largest size; a smaller size takes the first profiles of
   the same draw (:mod:`jaxrec.attacks.scenario`). The GAN attack's filler comes from a GAN (the
   config's ``gan`` section) trained on the real, untrusted users' training profiles; its D is
   one of the detectors.
2. Defenses: none; an adversarially trained victim (a victim with ``adv.method: apr`` or
   ``vat``); a certified ensemble (``attack.certified``: PORE's bagged ensemble of the
   ``certify`` section, retrained on every poisoned set, :func:`attack_certified`); and filters: each
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

Writes ``<output_dir>/<name>/{config.yaml, results.json, results.csv, report.md}``,
``target_hr@K_vs_size_<attack>.png`` (one curve per victim model and defense, ± std over seeds,
size 0 = the clean victim) and ``roc_<attack>.png`` (every detector at the largest size, seed 0).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from jaxrec.attacks import detection
from jaxrec.attacks.metrics import target_metrics, target_ranking
from jaxrec.attacks.optimized import KINDS as OPTIMIZED
from jaxrec.attacks.scenario import Scenario, fake_sets, poisoned_sets, scenario
from jaxrec.config import CheckpointConfig, Config, validate
from jaxrec.errors import JaxrecError, config_key, config_section
from jaxrec.evaluate import check_ks
from jaxrec.experiment.certified import ensemble, target_outcomes
from jaxrec.experiment.data import load_split
from jaxrec.experiment.optimized import members_on_targets, optimized_fakes, tune_closed
from jaxrec.experiment.output import run_dir_of
from jaxrec.experiment.studies.attack_report import tables, write_report  # noqa: F401 (the study's parts)
from jaxrec.experiment.studies.attack_sequences import (
    POISON,
    check_sequence_attack,
    sequence_fakes,
)
from jaxrec.experiment.studies.base import (
    StudyResult,
    entry_config,
    say,
    seed_configs,
    summarise,
    victims,
    with_drops,
)
from jaxrec.experiment.training import train_members
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential

NAME = "attack"
HELP = "inject fake users (random/average/bandwagon/GAN/optimized), retrain victims with defenses; target HR"
DEFAULTS = "MF on ml-100k as the only victim, all four attacks"  #: what the built-in config runs
DETECTION_FIGURES = ("precision", "recall", "auc", "fpr", "flagged", "real_flagged")


@dataclasses.dataclass
class Extras:
    """Per-detector ``detection`` rows and their summary, ROC curves ``{(attack, detector): (fpr,
    tpr, auc)}``, the targets' raw ids, and the scenario."""

    detection: list
    detection_summary: list
    roc: dict
    targets: list
    scenario: Scenario
    #: the optimized attacks' outer steps: one row per (attack, step, seed, size)
    outer: list = dataclasses.field(default_factory=list)
    #: the closed attack's settings tried on the attacker's proxies (:func:`tune_closed`)
    tuning: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plan:
    victims: list  #: ``[(label, config)]``
    scenario: Scenario
    ks: tuple
    surrogate: Config | None = None  #: the optimized attacks' surrogate (``optimized.surrogate``)
    proxies: list = dataclasses.field(default_factory=list)  #: ``[(label, config)]``: closed's tuning
    max_len: int = 0  #: sequence victims: the fakes' longest length (0: embedding victims)


def check(cfg: Config, base_dir=".", rated=None) -> Plan:
    """Every ``attack.*`` value and victim file, then the rated data (``rated``: a split with its
    ratings; default: loaded from ``cfg.data``) and the scenario (sizes, targets)."""
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
    run_victims = victims(cfg, base_dir, NAME, sequences=True)
    seq = {is_sequential(MODELS[v.model.name]) for _, v in run_victims}
    if len(seq) > 1:
        raise JaxrecError(
            "attack.victims: sequence and embedding victims read the data differently (events in order, or "
            "rated profiles); attack them in two studies"
        )
    sequential = seq.pop()
    if rated is None:  # sequences: every event, with its rating where the data have them
        rated = load_split(cfg.data, keep_ratings="if_rated" if sequential else True, sequential=sequential)
    max_len = 0
    if sequential:
        n_targets = len(a.targets) or a.n_targets
        max_len = check_sequence_attack(cfg, run_victims, rated.n_items, n_targets)
    elif rated.train.ratings is None:
        raise JaxrecError(f"{rated.train.source}: the attacks on rated profiles need ratings (attack.kinds)")
    elif "repeats" in a.detectors:
        raise JaxrecError("attack.detectors: repeats reads the events of sequences; these victims are embedding models")
    with config_section("attack"):
        sc = scenario(rated, a.sizes, a.threshold, a.targets, a.n_targets, a.target_pool, a.seed, a.filler, a.trusted)
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, sc.split.n_items)
    if sequential:
        return Plan(run_victims, sc, ks, max_len=max_len)
    surrogate = None
    if set(a.kinds) & set(OPTIMIZED):
        o = cfg.optimized
        surrogate = entry_config(cfg, o.surrogate, base_dir, "optimized.surrogate")[1] if o.surrogate else cfg
        if o.k > sc.split.n_items - len(sc.targets):
            raise JaxrecError(f"optimized.k: {o.k} is more than the {sc.split.n_items} items minus the targets")
        if "truncated" in a.kinds and o.unroll < 1:
            raise JaxrecError("optimized.unroll: the truncated attack trains unroll >= 1 epochs per outer step")
        if "closed" in a.kinds:
            _check_closed(o, sc.split.n_items)
    proxies = _check_tuning(cfg, base_dir)
    return Plan(run_victims, sc, ks, surrogate, proxies)


CLOSED_MAX = 20_000  #: the closed attack's candidate items at most (C x C float32 matrices: 1.6 GB each)


def _check_closed(o, n_items: int) -> None:
    """The closed attack fits EASE over its candidate items, ranks only them, and inverts a
    ``C x C`` matrix per outer step: refuse a K it cannot rank and a C it cannot hold."""
    c = o.candidates or n_items
    if o.candidates and o.k > o.candidates:
        raise JaxrecError(
            f"optimized.k: {o.k} is more than the {o.candidates} candidate items the closed attack ranks; "
            "raise optimized.candidates or lower optimized.k"
        )
    if c > CLOSED_MAX:
        raise JaxrecError(
            f"optimized.candidates: the closed attack inverts a C x C matrix per outer step, and C = {c} "
            f"({'all items' if not o.candidates else 'the setting'}) is more than {CLOSED_MAX}; set "
            f"optimized.candidates to at most {CLOSED_MAX} (the most popular items and the targets)"
        )


def _check_tuning(cfg: Config, base_dir) -> list:
    """The proxy victims (``[(label, config)]``) when the closed attack's settings are tuned (a
    ``tune_lam`` or ``tune_kappa`` grid), else none; a grid without the closed attack, a ``kappa``
    grid its loss ignores, or proxy seeds that could meet the victims' are refused."""
    o, a = cfg.optimized, cfg.attack
    if not (o.tune_lam or o.tune_kappa):
        return []
    if "closed" not in a.kinds:
        raise JaxrecError("optimized.tune_lam, tune_kappa: only the closed attack is tuned; add closed to attack.kinds")
    if o.tune_kappa and o.loss not in ("hr", "cw"):
        raise JaxrecError(f"optimized.tune_kappa: the {o.loss} loss has no kappa; use loss hr or cw, or drop the grid")
    if o.proxy_seed < a.seeds:
        raise JaxrecError(
            f"optimized.proxy_seed: {o.proxy_seed} would train a proxy with a victim's seed "
            f"(victims use train.seed + 0..{a.seeds - 1}); give at least {a.seeds}"
        )
    if not o.proxies:
        return [(cfg.name, cfg)]
    return [entry_config(cfg, e, base_dir, f"optimized.proxies[{i}]") for i, e in enumerate(o.proxies)]


def describe(cfg: Config, plan: Plan) -> str:
    where = ", ".join(label for label, _ in plan.victims)
    return f"{', '.join(cfg.attack.kinds)} attacks at sizes {list(cfg.attack.sizes)} on {where} ({cfg.data.dataset})"


def _gan(cfg: Config, sc: Scenario, run_dir: Path, progress: bool, log):
    """Train the GAN of ``cfg.gan`` on the untrusted real users' training profiles (0/1, or
    ``rating / K`` with ``gan.rated``; with ``gan.select`` the epoch is selected against the trusted
    users): returns ``(sample(key, lengths [n]), suspicion(ratings [N, n_items]))``."""
    from jaxrec.adversarial import gan_training as gt
    from jaxrec.experiment.gans import spec_from_config, train_gan

    users = np.setdiff1d(sc.real_users, sc.trusted)
    with config_key("gan.rated"):
        levels = gt.rating_levels(sc.rated.train) if cfg.gan.rated else 0
    ratings = sc.rated.train.dense(rated=True)
    spec = spec_from_config(cfg.gan, sc.rated.n_items, levels)
    valid = None
    if cfg.gan.select != "none":
        lengths = np.full(max(sc.counts), sc.filler)
        folds = min(cfg.gan.fresh_folds, sc.trusted.size, lengths.size) if cfg.gan.select == "detector" else 0
        if cfg.gan.select == "detector" and folds < 2:
            raise JaxrecError(
                f"gan.select: detector needs >= 2 trusted users and fakes, got {sc.trusted.size} and {lengths.size}"
            )
        key = gt.stream_key(cfg.gan.seed, "select")  # the validation fakes' noise
        valid = gt.realism_valid(
            gt.d_view(ratings[sc.trusted], levels), lengths, key, levels=levels, folds=folds, seed=cfg.gan.seed
        )
    ck_dir = run_dir / "gan-checkpoints"
    shutil.rmtree(ck_dir, ignore_errors=True)  # this study's scratch: an interrupted study's is stale
    gcfg = dataclasses.replace(cfg, checkpoint=CheckpointConfig(every=0, dir=str(ck_dir)))
    log(f"GAN: training G and D on {users.size} real users for {cfg.gan.epochs} epochs")
    fit = train_gan(gcfg, spec, gt.d_view(ratings[users], levels), lambda *a: None, False, valid)
    params = gt.kept(fit.selected)
    generate = lambda key, lengths: gt.sample(spec, params["g"], key, lengths)  # noqa: E731
    return generate, (lambda r: gt.d_suspicion(spec, params["d"], gt.d_view(r, levels)))


def _detectors(cfg: Config, d_suspicion, implicit: bool = False) -> dict:
    """``{name: suspicion(ratings)}`` of ``attack.detectors``; an error names the detector.
    ``implicit``: the matrix holds a sequence's event counts (:data:`~jaxrec.attacks.detection.SEQUENCE_DETECTORS`)."""
    a = cfg.attack

    def named(name, fn):
        def suspicion(r):
            with config_key(f"attack.detectors: {name}"):
                return fn(r)

        return suspicion

    stat = lambda name: lambda r: detection.suspicion(name, r, a.pca_components, a.degsim_k, implicit)  # noqa: E731
    return {name: named(name, d_suspicion if name == "d" else stat(name)) for name in a.detectors}


def attack_victim(label: str, vcfg: Config, sc: Scenario, variants: list, ks, progress: bool, log) -> tuple[list, dict]:
    """Rows of one victim: its clean members, then one program per attack (see the module
    docstring); and its timings."""
    a = vcfg.attack
    adv = vcfg.adv.method  # a training defense (apr, vat) or none
    trained = adv != "none"
    base = {"victim": label, "model": vcfg.model.name}
    timing: dict = {}
    seeds = seed_configs(vcfg, a.seeds)
    log(f"{label}: training {a.seeds} clean seed(s) as members of one program")
    t0 = time.perf_counter()
    clean = train_members(seeds, sc.split, progress=progress)
    timing["clean_train_s"] = time.perf_counter() - t0
    interacted = [p for p in (sc.rated.train, sc.rated.valid, sc.rated.test) if p is not None]

    def outcomes(run):
        return members_on_targets(run, sc, interacted, ks, vcfg.eval.chunk)

    def row(run, out, m, defense, attack, count, seed, detected=None):
        one = {k: x[m] for k, x in out.items()}
        drops = with_drops(dict(run.metrics[m]), clean.metrics[seed], ks)
        return {
            **base,
            "defense": defense,
            "attack": attack,
            "size": count,
            "share": count / sc.n_real,
            "seed": seed,
            **drops,
            **target_metrics(one, ranking, clean_scores[seed]),
            **({f"detect_{k}": x for k, x in detected.items()} if detected else {}),
            "failed": run.fit.member(m).failed,
        }

    ranking, out = outcomes(clean)
    clean_scores = out["score"]
    rows = [row(clean, out, s, adv, "clean", 0, s) for s in range(a.seeds)]
    for kind in a.kinds:
        mine = [v for v in variants if v.kind == kind and (v.defense == "none" or not trained)]
        log(f"{label}: {kind} attack, {len(mine)} poisoned training sets as members of one program")
        t0 = time.perf_counter()
        run = train_members([seeds[v.seed] for v in mine], sc.split, progress=progress, trains=[v.train for v in mine])
        timing[f"{kind}_train_s"] = time.perf_counter() - t0
        _, out = outcomes(run)
        for m, v in enumerate(mine):
            detected = None if trained else v.detection
            rows.append(row(run, out, m, adv if trained else v.defense, kind, v.count, v.seed, detected))
        timing[f"{kind}_members"] = len(mine)
    return rows, timing


def attack_certified(cfg: Config, base: str, sc: Scenario, variants: list, ks, log) -> list:
    """Rows of a certified ensemble (``attack.certified``; :mod:`jaxrec.experiment.certified`):
    one ensemble per clean seed, then one per unfiltered poisoned training set, subsampled with
    ``certify.seed + seed``. Defense ``certified``; its ``target_score`` is the target's votes."""
    label = cfg.model.name if base == "model" else base
    interacted = [p for p in (sc.rated.train, sc.rated.valid, sc.rated.test) if p is not None]
    ranking = target_ranking(sc.split.train, interacted, sc.targets, sc.n_real)

    def one(seed: int, train):
        c = dataclasses.replace(cfg, certify=dataclasses.replace(cfg.certify, seed=cfg.certify.seed + seed))
        ens = ensemble(c, sc.split, base, train=train, ks=ks)
        return ens.metrics, target_outcomes(ens.votes, ranking, ks)

    base_row = {"victim": f"certified-{label}", "model": f"certified-{label}", "defense": "certified"}
    clean, rows = {}, []
    log(f"certified {label} ensemble: {cfg.certify.sub_models} bases per training set")
    for seed in range(cfg.attack.seeds):
        clean[seed] = one(seed, sc.split.train)
        metrics, out = clean[seed]
        row = {**base_row, "attack": "clean", "size": 0, "share": 0.0, "seed": seed}
        rows.append({**row, **with_drops(dict(metrics), metrics, ks), **target_metrics(out, ranking, out["score"])})
    for v in variants:
        if v.defense != "none":
            continue
        metrics, out = one(v.seed, v.train)
        c_metrics, c_out = clean[v.seed]
        row = {**base_row, "attack": v.kind, "size": v.count, "share": v.count / sc.n_real, "seed": v.seed}
        rows.append({**row, **with_drops(dict(metrics), c_metrics, ks), **target_metrics(out, ranking, c_out["score"])})
    return [{**r, "failed": False} for r in rows]


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    a, sc, log = cfg.attack, plan.scenario, say(console, progress)
    t_all = time.perf_counter()
    timing: dict = {"victims": {}}
    generate = d_suspicion = None
    if "gan" in a.kinds or "d" in a.detectors:
        t0 = time.perf_counter()
        generate, d_suspicion = _gan(cfg, sc, run_dir_of(cfg), progress, log)
        timing["gan_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if plan.max_len:  # sequence victims: fake sequences
        fakes, outer = sequence_fakes(cfg, sc, plan.max_len, log)
        timing["profiles_s"] = time.perf_counter() - t0
        variants, roc = poisoned_sets(sc, fakes, a.kinds, a.seeds, None, _detectors(cfg, None, True), a.fpr, **POISON)
        timing["profiles_and_detectors_s"] = time.perf_counter() - t0
        return _victims(cfg, plan, variants, roc, outer, [], timing, t_all, progress, log)
    heuristic = [k for k in a.kinds if k not in OPTIMIZED]
    with config_key("attack"):
        fakes = fake_sets(sc, heuristic, a.seeds, a.seed, a.intent, a.selected, generate)
    outer, tuning = [], []
    for kind in (k for k in a.kinds if k in OPTIMIZED):
        t1 = time.perf_counter()
        with config_key("optimized"):
            kcfg = cfg
            if kind == "closed" and plan.proxies:
                kcfg, tuning = tune_closed(cfg, sc, plan.proxies, log)
                timing["closed_tuning_s"] = time.perf_counter() - t1
                t1 = time.perf_counter()  # the optimization's own time follows
            made, history = optimized_fakes(kcfg, sc, plan.surrogate, kind, log)
        fakes.update(made)
        outer += history
        timing[f"{kind}_optimization_s"] = time.perf_counter() - t1
    variants, roc = poisoned_sets(sc, fakes, a.kinds, a.seeds, a.threshold, _detectors(cfg, d_suspicion), a.fpr)
    timing["profiles_and_detectors_s"] = time.perf_counter() - t0
    return _victims(cfg, plan, variants, roc, outer, tuning, timing, t_all, progress, log)


def _victims(cfg: Config, plan: Plan, variants, roc, outer, tuning, timing, t_all, progress, log) -> StudyResult:
    """Every victim (and certified ensemble) on every poisoned training set; the study's result."""
    a, sc = cfg.attack, plan.scenario
    targets = [t.item() if hasattr(t, "item") else t for t in sc.rated.train.item_ids[sc.targets]]
    log(f"{len(variants)} poisoned training sets; targets {targets}")
    rows = []
    for label, vcfg in plan.victims:
        vrows, timing["victims"][label] = attack_victim(label, vcfg, sc, variants, plan.ks, progress, log)
        rows += vrows
    for base in a.certified:
        t1 = time.perf_counter()
        rows += attack_certified(cfg, base, sc, variants, plan.ks, log)
        timing[f"certified_{base}_s"] = time.perf_counter() - t1
    timing["wall_s"] = time.perf_counter() - t_all
    summary = summarise(rows, ["model", "defense", "attack", "size"], ("target_score_shift", "target_score"))
    found = [
        {"attack": v.kind, "size": v.count, "seed": v.seed, "detector": v.defense, **v.detection, "failed": False}
        for v in variants
        if v.detection
    ]
    found_summary = summarise(found, ["detector", "attack", "size"], DETECTION_FIGURES) if found else []
    extras = Extras(found, found_summary, roc, targets, sc, outer, tuning)
    return StudyResult(NAME, cfg, rows, summary, timing, extras)
