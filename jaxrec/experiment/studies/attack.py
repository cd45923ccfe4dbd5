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
   ``vat``); and filters: each
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
from jaxrec.attacks.metrics import members_outcomes, target_metrics, target_ranking
from jaxrec.attacks.optimized import KINDS as OPTIMIZED
from jaxrec.attacks.scenario import Scenario, fake_sets, poisoned_sets, scenario
from jaxrec.config import CheckpointConfig, Config, validate
from jaxrec.errors import JaxrecError, config_key, config_section
from jaxrec.evaluate import check_ks, model_chunk
from jaxrec.experiment.data import load_split
from jaxrec.experiment.optimized import optimized_fakes
from jaxrec.experiment.output import atomic_write, run_dir_of, write_results
from jaxrec.experiment.report import Table, cell, markdown_report, plot_curves, plot_roc
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


@dataclasses.dataclass
class Plan:
    victims: list  #: ``[(label, config)]``
    scenario: Scenario
    ks: tuple
    surrogate: Config | None = None  #: the optimized attacks' surrogate (``optimized.surrogate``)


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
    run_victims = victims(cfg, base_dir, NAME)
    rated = load_split(cfg.data, keep_ratings=True) if rated is None else rated
    with config_section("attack"):
        sc = scenario(rated, a.sizes, a.threshold, a.targets, a.n_targets, a.target_pool, a.seed, a.filler, a.trusted)
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, sc.split.n_items)
    surrogate = None
    if set(a.kinds) & set(OPTIMIZED):
        o = cfg.optimized
        surrogate = entry_config(cfg, o.surrogate, base_dir, "optimized.surrogate")[1] if o.surrogate else cfg
        if o.k > sc.split.n_items - len(sc.targets):
            raise JaxrecError(f"optimized.k: {o.k} is more than the {sc.split.n_items} items minus the targets")
        if "truncated" in a.kinds and o.unroll < 1:
            raise JaxrecError("optimized.unroll: the truncated attack trains unroll >= 1 epochs per outer step")
    return Plan(run_victims, sc, ks, surrogate)


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
        valid = gt.realism_valid(gt.d_view(ratings[sc.trusted], levels), lengths, key, levels, folds, cfg.gan.seed)
    ck_dir = run_dir / "gan-checkpoints"
    shutil.rmtree(ck_dir, ignore_errors=True)  # this study's scratch: an interrupted study's is stale
    gcfg = dataclasses.replace(cfg, checkpoint=CheckpointConfig(every=0, dir=str(ck_dir)))
    log(f"GAN: training G and D on {users.size} real users for {cfg.gan.epochs} epochs")
    fit = train_gan(gcfg, spec, gt.d_view(ratings[users], levels), lambda *a: None, False, valid)
    params = gt.kept(fit.selected)
    generate = lambda key, lengths: gt.sample(spec, params["g"], key, lengths)  # noqa: E731
    return generate, (lambda r: gt.d_suspicion(spec, params["d"], gt.d_view(r, levels)))


def _detectors(cfg: Config, d_suspicion) -> dict:
    """``{name: suspicion(ratings)}`` of ``attack.detectors``; an error names the detector."""
    a = cfg.attack

    def named(name, fn):
        def suspicion(r):
            with config_key(f"attack.detectors: {name}"):
                return fn(r)

        return suspicion

    stat = lambda name: lambda r: detection.suspicion(name, r, a.pca_components, a.degsim_k)  # noqa: E731
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
        chunk = vcfg.eval.chunk or model_chunk(run.training.model, sc.split.n_items, len(run.configs))
        ranking = target_ranking(sc.split.train, interacted, sc.targets, sc.n_real, chunk)
        tr = run.training
        return ranking, members_outcomes(tr.model, run.fit.best, tr.inputs, ranking, ks, tr.data_batched)

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
    heuristic = [k for k in a.kinds if k not in OPTIMIZED]
    with config_key("attack"):
        fakes = fake_sets(sc, heuristic, a.seeds, a.seed, a.intent, a.selected, generate)
    outer = []
    for kind in (k for k in a.kinds if k in OPTIMIZED):
        t1 = time.perf_counter()
        with config_key("optimized"):
            made, history = optimized_fakes(cfg, sc, plan.surrogate, kind, log)
        fakes.update(made)
        outer += history
        timing[f"{kind}_optimization_s"] = time.perf_counter() - t1
    variants, roc = poisoned_sets(sc, fakes, a.kinds, a.seeds, a.threshold, _detectors(cfg, d_suspicion), a.fpr)
    timing["profiles_and_detectors_s"] = time.perf_counter() - t0
    targets = [t.item() if hasattr(t, "item") else t for t in sc.rated.train.item_ids[sc.targets]]
    log(f"{len(variants)} poisoned training sets; targets {targets}")
    rows = []
    for label, vcfg in plan.victims:
        vrows, timing["victims"][label] = attack_victim(label, vcfg, sc, variants, plan.ks, progress, log)
        rows += vrows
    timing["wall_s"] = time.perf_counter() - t_all
    summary = summarise(rows, ["model", "defense", "attack", "size"], ("target_score_shift", "target_score"))
    found = [
        {"attack": v.kind, "size": v.count, "seed": v.seed, "detector": v.defense, **v.detection, "failed": False}
        for v in variants
        if v.detection
    ]
    found_summary = summarise(found, ["detector", "attack", "size"], DETECTION_FIGURES) if found else []
    extras = Extras(found, found_summary, roc, targets, sc, outer)
    return StudyResult(NAME, cfg, rows, summary, timing, extras)


# ------------------------------------------------------------------------------------------------
# report


def _with_clean(summary: list[dict]) -> dict:
    """``{(model, defense, attack): {size: summary row}}``, every attack's curve starting at its
    victim's clean row (a filter defense starts at the undefended clean victim)."""
    clean = {(s["model"], s["defense"]): s for s in summary if s["attack"] == "clean"}
    out: dict = {}
    for s in summary:
        if s["attack"] == "clean":
            continue
        start = clean.get((s["model"], s["defense"])) or clean.get((s["model"], "none"))
        cells = out.setdefault((s["model"], s["defense"], s["attack"]), {})
        cells[s["size"]] = s
        if start is not None:
            cells[0] = start
    return out


def size_table(title: str, summary: list[dict], metric: str, digits: int = 4) -> Table:
    """Per (model, defense, attack) ``metric`` before the attack (size 0) and at every size,
    ``mean ± std`` over seeds."""
    curves = _with_clean(summary)
    sizes = sorted({k for c in curves.values() for k in c})
    header = ["model", "defense", "attack", *("clean" if n == 0 else f"{n} fakes" for n in sizes)]
    rows = [[*key, *(cell(c[n], metric, digits) if n in c else "-" for n in sizes)] for key, c in curves.items()]
    return Table(title, header, rows)


def tables(result: StudyResult) -> list[Table]:
    """Target HR at every K, the prediction shift, the drop of test NDCG, the detectors."""
    ks, s = sorted(result.config.eval.ks), result.summary
    out = [
        size_table(
            f"target HR@{k} (real users who never interacted with a target), mean ± std over seeds", s, f"target_hr@{k}"
        )
        for k in ks
    ]
    out.append(size_table("target prediction shift (poisoned minus clean score)", s, "target_score_shift"))
    k = ks[len(ks) // 2]
    out.append(size_table(f"relative drop of test NDCG@{k} (1 - poisoned / clean)", s, f"drop_ndcg@{k}", 3))
    out.append(defense_table(result))
    if result.extras.outer:
        out.append(outer_table(result))
    found = result.extras.detection_summary
    if found:
        header = ["detector", "attack", "fakes", "precision", "recall", "ROC-AUC", "flagged (real)", "FPR on real"]
        rows = [
            [
                d["detector"],
                d["attack"],
                str(d["size"]),
                cell(d, "precision", 3),
                cell(d, "recall", 3),
                cell(d, "auc", 3),
                f"{d['flagged_mean']:.1f} ({d['real_flagged_mean']:.1f})",
                cell(d, "fpr", 3),
            ]
            for d in found
        ]
        out.append(
            Table(
                f"detectors: flag users above the threshold set at FPR {result.config.attack.fpr} (nominal) on trusted "
                "real users; FPR on real: measured on the untrusted real users",
                header,
                rows,
            )
        )
    return out


def defense_table(result: StudyResult) -> Table:
    """Every defense against every attack at the largest size: target HR at the smallest and the
    largest K, the prediction shift, the poisoned victim's test NDCG@K and its clean one (a
    training defense's accuracy cost shows against the undefended victim's clean row)."""
    ks, s = sorted(result.config.eval.ks), result.summary
    k = ks[len(ks) // 2]
    clean = {(r["model"], r["defense"]): r for r in s if r["attack"] == "clean"}
    largest = max((r["size"] for r in s if r["attack"] != "clean"), default=0)
    hr = dict.fromkeys((f"target_hr@{ks[0]}", f"target_hr@{ks[-1]}"))
    header = ["model", "defense", "attack", *hr, "shift", f"ndcg@{k}", f"clean ndcg@{k}"]
    rows = []
    for r in s:
        if r["attack"] == "clean" or r["size"] != largest:
            continue
        c = clean.get((r["model"], r["defense"])) or clean.get((r["model"], "none"))
        rows.append(
            [
                r["model"],
                r["defense"],
                r["attack"],
                *(cell(r, m) for m in hr),
                cell(r, "target_score_shift", 3),
                cell(r, f"ndcg@{k}"),
                cell(c, f"ndcg@{k}") if c else "-",
            ]
        )
    return Table(f"defenses against every attack with {largest} fake users, mean ± std over seeds", header, rows)


def _outer_summary(result: StudyResult) -> list[dict]:
    """The outer steps, mean ± std over seeds per (attack, size, step)."""
    rows = [{**r, "failed": False} for r in result.extras.outer]
    return summarise(rows, ["attack", "size", "step"], ["outer_loss", "changed"])


def outer_table(result: StudyResult) -> Table:
    """Per optimized attack and size: the outer loss and the surrogate's own target HR at the first
    and the last outer step (each of the profile that step started from)."""
    k = result.config.optimized.k
    hr = f"surrogate_target_hr@{k}"
    summary = _outer_summary(result)
    rows = []
    for attack, size in dict.fromkeys((s["attack"], s["size"]) for s in summary):
        steps = [s for s in summary if (s["attack"], s["size"]) == (attack, size)]
        first, last = steps[0], steps[-1]
        rows.append(
            [attack, str(size), cell(first, "outer_loss"), cell(last, "outer_loss"), cell(first, hr), cell(last, hr)]
        )
    header = ["attack", "fakes", "outer loss, first step", "last step", f"surrogate HR@{k}, first", "last"]
    return Table("optimized attacks: the surrogate's own figures over the outer steps", header, rows)


def plots(result: StudyResult, run_dir: Path) -> list[Path]:
    """Target HR@K (smallest and largest K) against the attack size per attack; ROC curves."""
    ks = sorted(result.config.eval.ks)
    out, curves = [], []
    for (model, defense, attack), cells in _with_clean(result.summary).items():
        curves += [{**s, "model": model, "defense": defense, "attack": attack, "size": n} for n, s in cells.items()]
    for attack in dict.fromkeys(c["attack"] for c in curves):
        mine = [c for c in curves if c["attack"] == attack]
        for k in dict.fromkeys((ks[0], ks[-1])):
            m = f"target_hr@{k}"
            out.append(
                plot_curves(
                    mine,
                    "size",
                    m,
                    ["model", "defense"],
                    run_dir / f"{m}_vs_size_{attack}.png",
                    f"{attack} attack: {m}",
                    "fake users (0: clean)",
                )
            )
    if result.extras.outer:
        summary, hr = _outer_summary(result), f"surrogate_target_hr@{result.config.optimized.k}"
        for attack in dict.fromkeys(s["attack"] for s in summary):
            mine = [s for s in summary if s["attack"] == attack]
            path = run_dir / f"{hr}_vs_step_{attack}.png"
            out.append(
                plot_curves(mine, "step", hr, ["size"], path, f"{attack} attack: the surrogate's {hr}", "outer step")
            )
    roc = result.extras.roc
    for attack in dict.fromkeys(a for a, _ in roc):
        mine = {d: c for (a, d), c in roc.items() if a == attack}
        out.append(plot_roc(mine, run_dir / f"roc_{attack}.png", f"detectors vs the {attack} attack"))
    return out


def write_report(result: StudyResult, run_dir: Path) -> None:
    """``config.yaml``, ``results.csv``, ``results.json``, the plots and ``report.md``."""
    cfg, x = result.config, result.extras
    sc, a = x.scenario, cfg.attack
    figures = plots(result, run_dir)
    payload = {
        "rows": result.rows,
        "summary": result.summary,
        "detection": x.detection,
        "detection_summary": x.detection_summary,
        "targets": x.targets,
        "outer": x.outer,
        "timing": result.timing,
        "fake_users": sc.counts,
        "n_real_users": sc.n_real,
        "filler": sc.filler,
        "trusted_users": sc.trusted.size,
        "plots": [p.name for p in figures],
    }
    write_results(cfg, result.rows, payload, command=NAME)
    intro = [
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}; ratings >= {a.threshold} are "
        "positives after the fake users join the training part. Test set, full ranking.",
        f"Targets (raw item ids, attacked jointly, {a.intent}): {x.targets}. Attacks: {', '.join(a.kinds)}; "
        f"fake users {sc.counts} of {sc.n_real} real; filler {sc.filler} items; {a.seeds} seed(s).",
        f"Detectors: {', '.join(a.detectors) or 'none'}, threshold at FPR {a.fpr} on {sc.trusted.size} trusted "
        f"real users. Wall time: {result.timing['wall_s']:.1f} s.",
    ]
    text = markdown_report(f"Attack report: {cfg.name}", intro, tables(result), figures, result.timing)
    atomic_write(run_dir / "report.md", text)
