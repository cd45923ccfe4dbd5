"""``jaxrec robustness``: how far each victim's accuracy falls under perturbations of its
parameters and of its training data, for many strengths at once.

For every victim (a config file: a model, its training and optional APR):

1. its ``robustness.seeds`` training seeds train as members of one program
   (:func:`~jaxrec.experiment.training.train_members`);
2. per trained member and method, one vmapped program perturbs the embedding tables at every
   strength and noise seed and ranks every test user (:func:`jaxrec.robustness.sweep`): metrics,
   top-K Jaccard against the clean ranking, score shift, the adversary's loss;
3. with ``robustness.data_kinds``, the victim retrains on every (kind, rate, data seed) of
   randomly dropped or added training interactions -- all of them members of one program on the
   engine's padded data variants -- and is compared with its clean run.

Rows (one per member x seed x strength), summaries (mean ± std over training and noise seeds),
the worst-hit users and timings go to ``<output_dir>/<name>/{config.yaml, results.json,
results.csv, report.md, *.png}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from jaxrec.config import CheckpointConfig, Config, load_config, validate
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import METRICS, check_ks, split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import atomic_write, check_writable, run_dir_of, write_results, written
from jaxrec.experiment.sweep import summarise
from jaxrec.experiment.training import train_members
from jaxrec.robustness import PGD, auto_batch, data_noise, report, sweep, sweep_chunk
from jaxrec.robustness.strengths import against_reference
from jaxrec.train.state import member


@dataclasses.dataclass
class RobustnessResult:
    """What :func:`robustness` measured (see the module docstring); ``summary`` and
    ``data_summary`` hold ``<metric>_mean`` / ``_std`` per (victim, method, eps) and per
    (victim, kind, rate)."""

    rows: list
    summary: list
    data_rows: list
    data_summary: list
    worst_users: list
    timing: dict
    run_dir: Path | None


def check(cfg: Config) -> None:
    """Every ``robustness.*`` value, before anything loads or trains (single values' ranges are
    the config's rules; these checks relate several)."""
    validate(cfg)
    r = cfg.robustness
    if not r.methods and not r.data_kinds:
        raise JaxrecError("robustness.methods and robustness.data_kinds are both empty: nothing to measure")
    if r.methods and (not r.eps or any(not math.isfinite(e) for e in r.eps)):
        raise JaxrecError(f"robustness.eps: give one or more finite strengths >= 0, got {list(r.eps)}")
    if r.data_kinds and not r.data_rates:
        raise JaxrecError("robustness.data_rates: give one or more rates in [0, 1) for robustness.data_kinds")
    name, _, k = r.plot_metric.partition("@")
    if name not in METRICS or not k.isdigit() or int(k) not in cfg.eval.ks:
        raise JaxrecError(
            f"robustness.plot_metric: {r.plot_metric!r} is not a metric at one of eval.ks {list(cfg.eval.ks)}"
        )


def victims(cfg: Config, base_dir: str | Path = ".", section: str = "robustness") -> list[tuple[str, Config]]:
    """``(label, config)`` per victim: each ``<section>.victims`` entry (``robustness`` or
    ``attack``) -- a config file (relative to ``base_dir``), optionally followed by ``KEY=VALUE``
    overrides separated by spaces (``ml100k-mf.yaml train.epochs=40``) -- with this config's data,
    eval, output, robustness and attack sections; or this config itself when there are none.
    Labels are the victims' names."""
    entries = getattr(cfg, section).victims
    if not entries:
        return [(cfg.name, cfg)]
    out = []
    for i, entry in enumerate(entries):
        path, *overrides = entry.split()
        with config_key(f"{section}.victims[{i}]"):
            v = load_config(Path(base_dir) / path, overrides)
        label = v.name
        v = dataclasses.replace(
            v,
            name=f"{cfg.name}-{label}",
            output_dir=cfg.output_dir,
            data=cfg.data,
            eval=cfg.eval,
            robustness=cfg.robustness,
            attack=cfg.attack,
            checkpoint=CheckpointConfig(),
        )
        out.append((label, v))
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise JaxrecError(f"{section}.victims: two victims share a name ({labels}); give each config its own name")
    return out


def seed_configs(cfg: Config, n: int) -> list[Config]:
    """``cfg`` with ``train.seed``, ``+1``, ... ``+ n - 1``: the members of one program."""
    return [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + s)) for s in range(n)]


def with_drops(row: dict, clean: dict, ks) -> dict:
    """``row`` plus ``drop_<metric>@K = 1 - metric / clean metric`` for recall and NDCG."""
    for k in ks:
        for m in ("recall", "ndcg"):
            c = clean[f"{m}@{k}"]
            row[f"drop_{m}@{k}"] = 1.0 - row[f"{m}@{k}"] / c if c > 0 else float("nan")
    return row


def _worst(label, method, eps: list, res_list, split: Split, k: int, n: int) -> list[dict]:
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


def run_robustness(
    cfg: Config,
    base_dir: str | Path = ".",
    progress: bool = True,
    write: bool = True,
    split: Split | None = None,
    console=None,
    overwrite: bool = False,
) -> RobustnessResult:
    """Run the robustness study ``cfg.robustness`` (see the module docstring)."""
    check(cfg)
    r = cfg.robustness
    run_victims = victims(cfg, base_dir)
    if write:
        check_writable(cfg, "robustness", overwrite)
    split = load_split(cfg.data) if split is None else split
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, split.n_items)
    say = console.log if console is not None and progress else (lambda *a, **k: None)
    pgd = PGD(r.pgd_steps, r.pgd_step_size, r.pgd_random_start)
    rows, data_rows, worst = [], [], []
    timing: dict = {"victims": {}}
    t_all = time.perf_counter()
    for label, vcfg in run_victims:
        t = timing["victims"][label] = {}
        say(f"{label}: training {r.seeds} seed(s) as members of one program")
        t0 = time.perf_counter()
        clean_run = train_members(seed_configs(vcfg, r.seeds), split, progress=progress)
        t["train_s"] = time.perf_counter() - t0
        tr = clean_run.training
        batch = min(r.strength_batch, len(r.eps)) or auto_batch(tr.model, split.n_items, len(r.eps), r.noise_seeds)
        t["strength_batch"] = batch
        width = r.noise_seeds * batch
        ranking = split_ranking(split, "test", cfg.eval.chunk or sweep_chunk(tr.model, split.n_items, width))
        base = {"victim": label, "model": vcfg.model.name, "adv": vcfg.adv.method}
        for m, mcfg in enumerate(clean_run.configs):  # the clean model: eps 0, its own ranking
            stable = {f"{n}@{k}": float(n == "jaccard") for k in ks for n in ("jaccard", "score_shift")}
            rows.append(
                {
                    **base,
                    "train_seed": mcfg.train.seed,
                    "method": "none",
                    "eps": 0.0,
                    "noise_seed": 0,
                    **with_drops({**clean_run.metrics[m], **stable}, clean_run.metrics[m], ks),
                    "failed": clean_run.fit.member(m).failed,
                }
            )
        for method in r.methods:
            say(
                f"{label}: {method} at {len(r.eps)} strength(s) x {r.noise_seeds} noise seed(s), one program per member"
            )
            t0, results = time.perf_counter(), []
            for m, mcfg in enumerate(clean_run.configs):
                one = clean_run.fit.member(m)
                if one.failed:
                    continue
                res = sweep(
                    tr.model,
                    one.best_params,
                    tr.inputs,
                    tr.data,
                    ranking,
                    r.eps,
                    method,
                    ks,
                    r.relative,
                    r.noise_seeds,
                    jax.random.key(mcfg.train.seed),
                    pgd,
                    batch,
                )
                results.append(res)
                for row in res.rows:
                    row["noise_seed"] = row.pop("seed")
                    rows.append(
                        {
                            **base,
                            "train_seed": mcfg.train.seed,
                            **with_drops(row, clean_run.metrics[m], ks),
                            "failed": False,
                        }
                    )
            t[f"{method}_s"] = time.perf_counter() - t0
            if results and r.worst_users:
                worst += _worst(label, method, list(r.eps), results, split, max(ks), r.worst_users)
        if r.data_kinds:
            data_rows += _data_noise(label, base, vcfg, clean_run, split, ks, t, progress, say)
    timing["wall_s"] = time.perf_counter() - t_all
    summary = summarise(rows, ["victim", "method", "eps"])
    data_summary = summarise(data_rows, ["victim", "kind", "rate"]) if data_rows else []
    run_dir = written(cfg, _write, cfg, rows, summary, data_rows, data_summary, worst, timing) if write else None
    return RobustnessResult(rows, summary, data_rows, data_summary, worst, timing, run_dir)


def _data_noise(label, base, vcfg, clean_run, split, ks, t, progress, say) -> list[dict]:
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
    say(f"{label}: retraining on {len(combos)} noisy training sets as members of one program")
    t0 = time.perf_counter()
    cfgs = [vcfg] * len(combos)  # one training seed: the differences come from the data alone
    noisy = train_members(cfgs, split, progress=progress, trains=trains)
    t["data_train_s"] = time.perf_counter() - t0
    tr, ref = noisy.training, clean_run.training
    ranking = split_ranking(split, "test", vcfg.eval.chunk or sweep_chunk(tr.model, split.n_items, len(combos)))
    best = noisy.fit.tracker.best if noisy.fit.tracker.best is not None else noisy.fit.state.params
    ref_params = clean_run.fit.member(0).best_params
    ref_inputs = member(ref.inputs, 0) if ref.data_batched else ref.inputs
    stats = against_reference(tr.model, best, tr.inputs, ref_params, ref_inputs, ranking, ks, tr.data_batched)
    out = []
    for m, (kind, rate, s) in enumerate(combos):
        row = {
            **base,
            "kind": kind,
            "rate": float(rate),
            "data_seed": s,
            "n_train": len(trains[m]),
            **stats[m],
            "failed": noisy.fit.member(m).failed,
        }
        out.append(with_drops(row, clean_run.metrics[0], ks))
    return out


def _write(cfg, rows, summary, data_rows, data_summary, worst, timing) -> Path:
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_all(cfg, summary, data_summary, run_dir)
    payload = {
        "rows": rows,
        "summary": summary,
        "data_rows": data_rows,
        "data_summary": data_summary,
        "worst_users": worst,
        "timing": timing,
        "plots": [p.name for p in plots],
    }
    write_results(cfg, rows + data_rows, payload, command="robustness")
    atomic_write(run_dir / "report.md", markdown(cfg, summary, data_summary, worst, timing, plots))
    return run_dir


def plot_all(cfg: Config, summary, data_summary, run_dir: Path) -> list[Path]:
    """``<metric>_vs_eps.png`` and ``jaccard@K_vs_eps.png`` (one curve per victim and method,
    ± std bands; eps 0 is the clean model), ``<metric>_vs_rate.png`` for data noise."""
    r = cfg.robustness
    metric = r.plot_metric
    k = metric.partition("@")[2]
    unit = " x mean row norm" if r.relative else ""
    plots = []
    if r.methods:
        curves = _with_clean_points(summary)
        plots.append(
            report.plot_curves(
                curves,
                "eps",
                metric,
                ["victim", "method"],
                run_dir / f"{metric}_vs_eps.png",
                f"{metric} under parameter perturbation",
                f"eps{unit}",
            )
        )
        plots.append(
            report.plot_curves(
                curves,
                "eps",
                f"jaccard@{k}",
                ["victim", "method"],
                run_dir / f"jaccard@{k}_vs_eps.png",
                f"top-{k} overlap with the clean ranking",
                f"eps{unit}",
            )
        )
    if data_summary:
        plots.append(
            report.plot_curves(
                data_summary,
                "rate",
                metric,
                ["victim", "kind"],
                run_dir / f"{metric}_vs_rate.png",
                f"{metric} after retraining on noisy data",
                "share of training interactions dropped / added",
            )
        )
    return plots


def _with_clean_points(summary: list[dict]) -> list[dict]:
    """Every method's curve, starting at the clean model (method ``none``, eps 0)."""
    clean = {s["victim"]: s for s in summary if s["method"] == "none"}
    perturbed = [s for s in summary if s["method"] != "none"]
    starts = {(s["victim"], s["method"]) for s in perturbed}
    return perturbed + [{**clean[v], "method": m} for v, m in sorted(starts)]


def tables(cfg: Config, summary, data_summary, worst) -> list[tuple[str, list, list]]:
    """``(title, header, rows)`` of the report's tables."""
    metric = cfg.robustness.plot_metric
    k = metric.partition("@")[2]
    out = []
    perturbed = [s for s in summary if s["method"] != "none"]
    if perturbed:
        for m in (f"drop_ndcg@{k}", f"drop_recall@{k}"):
            out.append(
                (
                    f"relative drop of {m[5:]} (1 - perturbed / clean), mean ± std over seeds",
                    *report.pivot(perturbed, ["victim", "method"], "eps", m, 3),
                )
            )
        out.append(
            (
                f"top-{k} Jaccard overlap with the clean ranking",
                *report.pivot(perturbed, ["victim", "method"], "eps", f"jaccard@{k}", 3),
            )
        )
        out.append(
            (
                f"score shift of the clean top-{k} items",
                *report.pivot(perturbed, ["victim", "method"], "eps", f"score_shift@{k}", 3),
            )
        )
    clean = [s for s in summary if s["method"] == "none"]
    if clean:
        out.append(
            (
                "clean test metrics",
                ["victim", "seeds", f"recall@{k}", f"ndcg@{k}"],
                [[s["victim"], str(s["n"]), report.cell(s, f"recall@{k}"), report.cell(s, f"ndcg@{k}")] for s in clean],
            )
        )
    if data_summary:
        for m in (f"drop_ndcg@{k}", f"jaccard@{k}"):
            out.append((f"retrained on noisy data: {m}", *report.pivot(data_summary, ["victim", "kind"], "rate", m, 3)))
    if worst:
        keys = list(worst[0])
        out.append(
            (
                "worst-hit users at the largest strength (NDCG drop, mean over seeds)",
                keys,
                [[f"{w[c]:.4f}" if isinstance(w[c], float) else str(w[c]) for c in keys] for w in worst],
            )
        )
    return out


def markdown(cfg: Config, summary, data_summary, worst, timing, plots) -> str:
    r = cfg.robustness
    lines = [
        f"# Robustness report: {cfg.name}",
        "",
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}, test set, full ranking.",
        f"Parameter perturbations of the layer-0 embedding tables: {', '.join(r.methods) or 'none'} at eps "
        f"{list(r.eps)} ({'relative: x each table mean row norm' if r.relative else 'absolute per-row L2 norm'}; "
        f"fgsm is an L-inf step), {r.noise_seeds} noise seed(s); PGD: {r.pgd_steps} steps"
        f"{', random start' if r.pgd_random_start else ''}. The adversary's loss is BPR over the training "
        "triples.",
        f"Training seeds per victim: {r.seeds}. Wall time: {timing['wall_s']:.1f} s.",
        "",
    ]
    for title, header, rows in tables(cfg, summary, data_summary, worst):
        lines += [f"## {title}", "", report.markdown_table(header, rows)]
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    lines += ["## timing (s)", "", "```", json.dumps(timing, indent=1), "```", ""]
    return "\n".join(lines)
