"""``jaxrec robustness``: how far each victim's accuracy falls under perturbations of its
parameters and of its training data, for many strengths at once.

For every victim (a config file: a model, its training and optional APR):

1. its ``robustness.seeds`` training seeds train as members of one program
   (:func:`~jaxrec.experiment.training.train_members`);
2. per trained member and method, one vmapped program perturbs the embedding tables at every
   strength and noise seed and ranks every test user (:func:`jaxrec.robustness.perturbed_metrics`):
   metrics, top-K Jaccard against the clean ranking, score shift, the adversary's loss;
3. with ``robustness.data_kinds``, the victim retrains on every (kind, rate, data seed) of
   randomly dropped or added training interactions -- all of them members of one program on the
   engine's padded data variants -- and is compared with its clean run.

Rows (one per member x seed x strength), summaries (mean ± std over training and noise seeds),
the worst-hit users and timings go to ``<output_dir>/<name>/{config.yaml, results.json,
results.csv, report.md, *.png}``.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import numpy as np

from jaxrec.config import Config, validate
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import METRICS, check_ks, model_chunk, split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.models import build_model
from jaxrec.experiment.output import atomic_write, write_results
from jaxrec.experiment.report import Table, cell, markdown_report, pivot, plot_curves, records_table
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.experiment.studies import pollution as pollution_study
from jaxrec.experiment.studies.base import StudyResult, say, seed_configs, summarise, victims, with_drops
from jaxrec.experiment.studies.pollution import pollution_rows, pollution_targets
from jaxrec.experiment.training import train_members
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.robustness import PGD, auto_batch, data_noise, perturbed_metrics
from jaxrec.robustness.pollution import Pollution, check_pollution
from jaxrec.robustness.strengths import against_reference
from jaxrec.robustness.windows import WindowLoss
from jaxrec.train.sequence import gbce_beta
from jaxrec.train.state import member

NAME = "robustness"
HELP = "perturb trained victims' parameters (many strengths in one pass) and training data; report"
DEFAULTS = "MF on ml-100k as the only victim"  #: what the built-in config runs


@dataclasses.dataclass
class Extras:
    """Retraining on noisy data (``data_rows``, ``data_summary`` per (victim, kind, rate)) and the
    worst-hit users at the largest strength."""

    data_rows: list
    data_summary: list
    worst_users: list
    pollution_rows: list = dataclasses.field(default_factory=list)
    pollution_summary: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plan:
    victims: list  #: ``[(label, config)]``
    split: object
    ks: tuple
    splits: dict = dataclasses.field(default_factory=dict)  #: sequential? -> the split its victims use
    targets: object = None  #: the pollution's target items (indices), when targeted

    def split_of(self, vcfg: Config):
        return self.splits.get(_sequential(vcfg), self.split)


def _sequential(vcfg: Config) -> bool:
    return is_sequential(MODELS[vcfg.model.name])


def check(cfg: Config, base_dir=".", split=None) -> Plan:
    """Every ``robustness.*`` value and victim file, then the data (single values' ranges are the
    config's rules; these checks relate several)."""
    validate(cfg)
    r = cfg.robustness
    if not r.methods and not r.data_kinds and not r.pollution:
        raise JaxrecError(
            "robustness.methods, robustness.data_kinds and robustness.pollution are all empty: nothing to measure"
        )
    if r.methods and (not r.eps or any(not math.isfinite(e) for e in r.eps)):
        raise JaxrecError(f"robustness.eps: give one or more finite strengths >= 0, got {list(r.eps)}")
    if r.data_kinds and not r.data_rates:
        raise JaxrecError("robustness.data_rates: give one or more rates in [0, 1) for robustness.data_kinds")
    name, _, k = r.plot_metric.partition("@")
    if name not in METRICS or not k.isdigit() or int(k) not in cfg.eval.ks:
        raise JaxrecError(
            f"robustness.plot_metric: {r.plot_metric!r} is not a metric at one of eval.ks {list(cfg.eval.ks)}"
        )
    run_victims = victims(cfg, base_dir, NAME, sequences=True)
    kinds = sorted({_sequential(v) for _, v in run_victims})
    for label, v in run_victims:
        if _sequential(v) and r.data_kinds:
            raise JaxrecError(
                f"robustness.data_kinds: retraining on noisy data is not available for sequence victims ({label}) "
                "yet; give data_kinds: [] or embedding-model victims"
            )
        if r.pollution and not _sequential(v):
            raise JaxrecError(
                f"robustness.pollution: profile pollution substitutes items of a user's history; {label} "
                f"({v.model.name}) is not a sequence model"
            )
    # a sequence victim reads its split as sequences (no deduplication, the sequence split rules)
    splits = {seq: split if split is not None else load_split(cfg.data, sequential=seq) for seq in kinds}
    with config_key("eval.ks"):
        ks = [check_ks(cfg.eval.ks, s.n_items) for s in splits.values()][0]
    targets = None
    if r.pollution:
        with config_key("robustness.pollution_targets"):
            targets = pollution_targets(r, splits[True])
        for label, v in run_victims:
            with config_key(f"robustness.pollution ({label})"):
                check_pollution(_pollution(r), build_model(v.model, splits[True].train)[0], targets)
    return Plan(run_victims, splits[kinds[0]], ks, splits, targets)


def _pollution(r) -> Pollution:
    return Pollution("gradient", r.pollution_k, r.pollution_positions, r.pollution_candidates, r.pollution_min_cos)


def describe(cfg: Config, plan: Plan) -> str:
    return f"robustness on {', '.join(label for label, _ in plan.victims)} ({cfg.data.dataset})"


def _worst(label, method, eps: list, res_list, split, k: int, n: int) -> list[dict]:
    """The ``n`` users whose NDCG@k falls most at the largest strength of ``eps``, averaged over
    the members and noise seeds."""
    s = int(np.argmax(eps))
    clean = np.mean([r.clean_ndcg for r in res_list], axis=0)
    hit = np.mean([r.user_ndcg[:, s].mean(0) for r in res_list], axis=0)
    users = res_list[0].users
    degree = np.bincount(split.train.users, minlength=split.n_users)
    order = np.argsort(-(clean - hit), kind="stable")[:n]
    return [
        {
            "victim": label,
            "method": method,
            "eps": float(eps[s]),
            "user": split.train.user_ids[users[i]].item(),
            "train_items": int(degree[users[i]]),
            f"clean_ndcg@{k}": float(clean[i]),
            f"ndcg@{k}": float(hit[i]),
            "drop": float(clean[i] - hit[i]),
        }
        for i in order
    ]


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    r, split, ks = cfg.robustness, plan.split, plan.ks
    log = say(console, progress)
    pgd = PGD(r.pgd_steps, r.pgd_step_size, r.pgd_random_start)
    rows, data_rows, worst, polluted = [], [], [], []
    timing: dict = {"victims": {}}
    t_all = time.perf_counter()
    for label, vcfg in plan.victims:
        split = plan.split_of(vcfg)
        t = timing["victims"][label] = {}
        log(f"{label}: training {r.seeds} seed(s) as members of one program")
        t0 = time.perf_counter()
        clean_run = train_members(seed_configs(vcfg, r.seeds), split, progress=progress)
        t["train_s"] = time.perf_counter() - t0
        tr = clean_run.training
        batch = min(r.strength_batch, len(r.eps)) or auto_batch(tr.model, split.n_items, len(r.eps), r.noise_seeds)
        t["strength_batch"] = batch
        width = r.noise_seeds * batch
        chunk = cfg.eval.chunk or model_chunk(tr.model, split.n_items, width)
        ranking = split_ranking(split, "test", chunk, **ranking_settings(vcfg, tr.model))
        loss = vcfg.train.loss
        beta = gbce_beta(vcfg.train.n_negatives, split.n_items, vcfg.train.gbce_t) if loss == "gbce" else 1.0
        window_loss = WindowLoss(loss, vcfg.train.n_negatives, beta) if _sequential(vcfg) else None
        base = {"victim": label, "model": vcfg.model.name, "adv": vcfg.adv.method}
        stable = {f"{n}@{k}": float(n == "jaccard") for k in ks for n in ("jaccard", "score_shift")}
        for m, mcfg in enumerate(clean_run.configs):  # the clean model: eps 0, its own ranking
            clean = {**clean_run.metrics[m], **stable}
            row = {**base, "train_seed": mcfg.train.seed, "method": "none", "eps": 0.0, "noise_seed": 0}
            rows.append(
                {**row, **with_drops(clean, clean_run.metrics[m], ks), "failed": clean_run.fit.member(m).failed}
            )
        for method in r.methods:
            log(
                f"{label}: {method} at {len(r.eps)} strength(s) x {r.noise_seeds} noise seed(s), one program per member"
            )
            t0, results = time.perf_counter(), []
            for m, mcfg in enumerate(clean_run.configs):
                one = clean_run.fit.member(m)
                if one.failed:
                    continue
                key = jax.random.key(mcfg.train.seed)
                res = perturbed_metrics(
                    tr.model,
                    one.best_params,
                    tr.inputs,
                    tr.data,
                    ranking,
                    eps=r.eps,
                    method=method,
                    ks=ks,
                    relative=r.relative,
                    seeds=r.noise_seeds,
                    key=key,
                    pgd=pgd,
                    batch=batch,
                    window_loss=window_loss,
                )
                results.append(res)
                for row in res.rows:
                    row["noise_seed"] = row.pop("seed")
                    drops = with_drops(row, clean_run.metrics[m], ks)
                    rows.append({**base, "train_seed": mcfg.train.seed, **drops, "failed": False})
            t[f"{method}_s"] = time.perf_counter() - t0
            if results and r.worst_users:
                worst += _worst(label, method, list(r.eps), results, split, max(ks), r.worst_users)
        if r.data_kinds:
            data_rows += _data_noise(label, base, vcfg, clean_run, split, ks, t, progress, log)
        if r.pollution:
            log(f"{label}: profile pollution, k = 0..{r.pollution_k} in one program per member, attack and mode")
            t0 = time.perf_counter()
            polluted += pollution_rows(base, vcfg, clean_run, split, ks, _pollution(r), r, plan.targets, t)
            t["pollution_s"] = time.perf_counter() - t0
    if plan.targets is not None:
        timing["pollution_targets"] = [plan.splits[True].train.item_ids[t].item() for t in plan.targets]
    timing["wall_s"] = time.perf_counter() - t_all
    summary = summarise(rows, ["victim", "method", "eps"])
    data_summary = summarise(data_rows, ["victim", "kind", "rate"]) if data_rows else []
    p_summary = summarise(polluted, ["victim", "attack", "mode", "protocol", "k"], ["exhausted"]) if polluted else []
    return StudyResult(NAME, cfg, rows, summary, timing, Extras(data_rows, data_summary, worst, polluted, p_summary))


def _data_noise(label, base, vcfg, clean_run, split, ks, t, progress, log) -> list[dict]:
    """Retrain the victim on every (kind, rate, data seed) in one program; compare each member
    with the clean member 0 (same training seed): metrics, drops, Jaccard, score shift."""
    r = vcfg.robustness
    combos = [(kind, rate, s) for kind in r.data_kinds for rate in r.data_rates for s in range(r.data_seeds)]
    avoid = tuple(p for p in (split.valid, split.test) if p is not None)
    with config_key("robustness.data_rates"):
        trains = [
            data_noise.perturb_data(split.train, kind, rate, 1000 * s + i, avoid)
            for i, (kind, rate, s) in enumerate(combos)
        ]
    log(f"{label}: retraining on {len(combos)} noisy training sets as members of one program")
    t0 = time.perf_counter()
    cfgs = [vcfg] * len(combos)  # one training seed: the differences come from the data alone
    noisy = train_members(cfgs, split, progress=progress, trains=trains)
    t["data_train_s"] = time.perf_counter() - t0
    tr, ref = noisy.training, clean_run.training
    ranking = split_ranking(split, "test", vcfg.eval.chunk or model_chunk(tr.model, split.n_items, len(combos)))
    ref_params = clean_run.fit.member(0).best_params
    ref_inputs = member(ref.inputs, 0) if ref.data_batched else ref.inputs
    stats = against_reference(tr.model, noisy.fit.best, tr.inputs, ref_params, ref_inputs, ranking, ks, tr.data_batched)
    out = []
    for m, (kind, rate, s) in enumerate(combos):
        row = {**base, "kind": kind, "rate": float(rate), "data_seed": s, "n_train": len(trains[m]), **stats[m]}
        out.append(with_drops({**row, "failed": noisy.fit.member(m).failed}, clean_run.metrics[0], ks))
    return out


def _with_clean_points(summary: list[dict]) -> list[dict]:
    """Every method's curve, starting at the clean model (method ``none``, eps 0)."""
    clean = {s["victim"]: s for s in summary if s["method"] == "none"}
    perturbed = [s for s in summary if s["method"] != "none"]
    starts = {(s["victim"], s["method"]) for s in perturbed}
    return perturbed + [{**clean[v], "method": m} for v, m in sorted(starts)]


def tables(result: StudyResult) -> list[Table]:
    """The report's tables: drops, Jaccard and score shift per (victim, method) and strength; the
    clean metrics; retraining on noisy data; the worst-hit users."""
    summary, x = result.summary, result.extras
    metric = result.config.robustness.plot_metric
    k = metric.partition("@")[2]
    out = []
    perturbed = [s for s in summary if s["method"] != "none"]
    by = ["victim", "method"]
    if perturbed:
        for m in (f"drop_ndcg@{k}", f"drop_recall@{k}"):
            title = f"relative drop of {m[5:]} (1 - perturbed / clean), mean ± std over seeds"
            out.append(pivot(title, perturbed, by, "eps", m, 3))
        out.append(pivot(f"top-{k} Jaccard overlap with the clean ranking", perturbed, by, "eps", f"jaccard@{k}", 3))
        out.append(pivot(f"score shift of the clean top-{k} items", perturbed, by, "eps", f"score_shift@{k}", 3))
    clean = [s for s in summary if s["method"] == "none"]
    if clean:
        rows = [[s["victim"], str(s["n"]), cell(s, f"recall@{k}"), cell(s, f"ndcg@{k}")] for s in clean]
        out.append(Table("clean test metrics", ["victim", "seeds", f"recall@{k}", f"ndcg@{k}"], rows))
    for m in (f"drop_ndcg@{k}", f"jaccard@{k}") if x.data_summary else ():
        out.append(pivot(f"retrained on noisy data: {m}", x.data_summary, ["victim", "kind"], "rate", m, 3))
    if x.worst_users:
        title = "worst-hit users at the largest strength (NDCG drop, mean over seeds)"
        out.append(records_table(title, x.worst_users))
    out += pollution_study.tables(x.pollution_summary, result.config.eval.ks)
    return out


def plots(result: StudyResult, run_dir) -> list:
    """``<metric>_vs_eps.png`` and ``jaccard@K_vs_eps.png`` (one curve per victim and method, ± std
    bands; eps 0 is the clean model), ``<metric>_vs_rate.png`` for data noise."""
    r = result.config.robustness
    metric, k = r.plot_metric, r.plot_metric.partition("@")[2]
    unit = f"eps{' x mean row norm' if r.relative else ''}"
    out = []
    if r.methods:
        curves, by = _with_clean_points(result.summary), ["victim", "method"]
        out.append(
            plot_curves(
                curves,
                "eps",
                metric,
                by,
                run_dir / f"{metric}_vs_eps.png",
                f"{metric} under parameter perturbation",
                unit,
            )
        )
        out.append(
            plot_curves(
                curves,
                "eps",
                f"jaccard@{k}",
                by,
                run_dir / f"jaccard@{k}_vs_eps.png",
                f"top-{k} overlap with the clean ranking",
                unit,
            )
        )
    out += pollution_study.plots(result.extras.pollution_summary, result.config.eval.ks, run_dir)
    if result.extras.data_summary:
        out.append(
            plot_curves(
                result.extras.data_summary,
                "rate",
                metric,
                ["victim", "kind"],
                run_dir / f"{metric}_vs_rate.png",
                f"{metric} after retraining on noisy data",
                "share of training interactions dropped / added",
            )
        )
    return out


def write_report(result: StudyResult, run_dir) -> None:
    """``config.yaml``, ``results.csv`` (every row), ``results.json``, the plots and ``report.md``."""
    cfg, x = result.config, result.extras
    figures = plots(result, run_dir)
    payload = {
        "rows": result.rows,
        "summary": result.summary,
        "data_rows": x.data_rows,
        "data_summary": x.data_summary,
        "worst_users": x.worst_users,
        "pollution_rows": x.pollution_rows,
        "pollution_summary": x.pollution_summary,
        "timing": result.timing,
        "plots": [p.name for p in figures],
    }
    write_results(cfg, result.rows + x.data_rows + x.pollution_rows, payload, command=NAME)
    r = cfg.robustness
    unit = "relative: x each table mean row norm" if r.relative else "absolute per-row L2 norm"
    intro = [
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}, test set, full ranking.",
        f"Perturbations: {', '.join(r.methods) or 'none'} at eps {list(r.eps)} ({unit}; fgsm is an L-inf step), "
        f"{r.noise_seeds} noise seed(s); PGD: {r.pgd_steps} steps{', random start' if r.pgd_random_start else ''}.",
        "Embedding-model victims: the layer-0 embedding tables are perturbed; the adversary's loss is BPR over the "
        "training triples. Sequence victims: each test user's input-window rows are perturbed per position (the "
        "item table is the unit of relative eps); the adversary's loss is the victim's training loss for the "
        "held-out next item.",
        f"Training seeds per victim: {r.seeds}. Wall time: {result.timing['wall_s']:.1f} s.",
    ]
    if r.pollution:
        intro.append(
            f"Profile pollution (Yue et al., RecSys 2022): {', '.join(r.pollution)} substitution of "
            f"k = 0..{r.pollution_k} "
            f"items of each test user's history ({', '.join(r.pollution_modes)}; gradient positions "
            f"{r.pollution_positions}, {r.pollution_candidates} candidates, cosine filter {r.pollution_min_cos}); "
            f"protocols {', '.join(r.pollution_protocols)}; targets (raw ids): "
            f"{result.timing.get('pollution_targets', [])}."
        )
    text = markdown_report(f"Robustness report: {cfg.name}", intro, tables(result), figures, result.timing)
    atomic_write(run_dir / "report.md", text)
