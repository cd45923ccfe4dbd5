"""``jaxrec certify``: an ensemble of recommenders trained on user subsamples, certified against
data poisoning (PORE: Jia, Liu, Hu, Gong, USENIX Security 2023).

1. Per base kind of ``certify.bases`` (``item``: item-based; ``model``: this config's model and
   train sections, e.g. MF-BPR), ``certify.sub_models`` (T) bases, each trained on
   ``certify.subsample`` (s) users drawn without replacement. The trained ones run as members of
   one compiled program per chunk of ``certify.chunk`` (:mod:`jaxrec.experiment.certified`).
2. Each base votes for its top ``certify.votes`` (N') unseen items for each of its users, and
   the votes are summed on device. The ensemble recommends the ``certify.top_n`` (N) most-voted
   unseen items. Its test metrics are the clean accuracy.
3. The certificate (:mod:`jaxrec.robustness.certificate`), at confidence ``1 - certify.alpha``:
   per user and per ``e = 0 .. certify.max_fakes`` fake users, ``r`` of the user's test items
   are guaranteed to stay in the top-N. Certified precision@N is the mean of ``r / N`` and
   certified recall@N the mean of ``r / |test items|``. For ``certify.targets`` items drawn from
   the unpopular half (an attacker's targets), a certified upper bound of their HR@N: no ``e``
   fake users can push them into more of their eligible users' top-N.
4. With ``certify.reference`` (PORE's vote directories), PORE's published ensembles are
   certified by the same code and drawn next to this run's.

5. With ``certify.extrapolate``, each ensemble is certified again as if it had that many bases
   with the same vote frequencies: a plug-in estimate of a larger T's curve, labelled
   "(extrapolated)", not a certificate.

Writes ``<output_dir>/<name>/{config.yaml, results.json, results.csv, certified_r.npz,
votes.npz, report.md}`` and ``certified_{precision,recall}@N.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxrec.attacks.poison import pick_targets
from jaxrec.config import Config, validate
from jaxrec.errors import JaxrecError, config_key
from jaxrec.experiment.certified import ensemble
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import atomic_write, write_results
from jaxrec.experiment.report import Table, markdown_report, plot_curves
from jaxrec.experiment.sequences import check_sequence
from jaxrec.experiment.studies import certify_ablation
from jaxrec.experiment.studies.base import StudyResult, say, summarise
from jaxrec.models import MODELS
from jaxrec.models.markov import check_items
from jaxrec.models.sequential import is_sequential
from jaxrec.robustness.bagging import pairs_mask
from jaxrec.robustness.certificate import Reference, certify, curve, read_reference, target_bound

NAME = "certify"
HELP = "train thousands of sub-models on user subsamples; certified precision/recall against e fake users"
DEFAULTS = "1,000 item-based and 1,000 MF sub-models of 200 users on ml-100k"
SHOWN_FAKES = (0, 1, 2, 3, 5, 10, 20, 30, 50)  #: the e values in the report's tables


@dataclasses.dataclass
class Plan:
    split: object
    references: list  #: [Reference]
    targets: np.ndarray  #: [T] target item ids (empty: none)


@dataclasses.dataclass
class Extras:
    ensembles: list  #: [certified.Ensemble]
    certified: dict  #: base label -> ``[U, E]`` certified r
    ablation: list = dataclasses.field(default_factory=list)  #: rows per radius (:mod:`.certify_ablation`)
    ablation_summary: list = dataclasses.field(default_factory=list)  #: the smoothed vs the base's accuracy


def check(cfg: Config, base_dir=".", split=None) -> Plan:
    """Every ``certify.*`` value, the data, and PORE's reference files, before any training."""
    validate(cfg)
    c = cfg.certify
    if not c.bases or len(set(c.bases)) != len(c.bases):
        raise JaxrecError(f"certify.bases: give item, model, transition or ablation, each once; got {list(c.bases)}")
    seq_model = bool({"model", "ablation"} & set(c.bases)) and is_sequential(MODELS[cfg.model.name])
    sequences = seq_model or bool({"transition", "ablation"} & set(c.bases))
    if "ablation" in c.bases:
        if not is_sequential(MODELS[cfg.model.name]):
            raise JaxrecError(
                f"certify.bases: ablation smooths a sequence model's history, and {cfg.model.name} is not one"
            )
        certify_ablation.check(cfg, cfg.model.max_len)
    if seq_model:
        check_sequence(cfg)
    if split is None:  # a sequence base reads the events in order (the sequence split rules)
        with config_key("certify.bases" if sequences else "data"):
            split = load_split(cfg.data, sequential=sequences)
    if sequences and "order" not in split.info:
        raise JaxrecError(
            f"certify.bases: {', '.join(b for b in c.bases if b != 'item')} read each user's events in order, "
            f"and the split of {cfg.data.dataset} has none (a leave-one-out split by time or file order)"
        )
    if "transition" in c.bases:
        check_items(split.n_items, "certify.bases: the transition base")
    if split.test is None:
        raise JaxrecError("data: certify needs a test part (data.ratios with a test share)")
    if c.subsample > split.n_users:
        raise JaxrecError(f"certify.subsample: {c.subsample} is more than the {split.n_users} users")
    for key, value in (("top_n", c.top_n), ("votes", c.votes)):
        if value >= split.n_items:
            raise JaxrecError(f"certify.{key}: {value} is not fewer than the {split.n_items} items")
    references = []
    for i, d in enumerate(c.reference):
        with config_key(f"certify.reference[{i}]"):
            references.append(read_reference(Path(base_dir) / d))
    with config_key("certify.targets"):
        targets = pick_targets(split.train, c.targets, "unpopular", c.seed) if c.targets else np.zeros(0, np.int32)
    return Plan(split, references, targets)


def describe(cfg: Config, plan: Plan) -> str:
    c = cfg.certify
    out = []
    bagged = [b for b in c.bases if b != "ablation"]
    if bagged:
        out.append(
            f"{c.sub_models} sub-models of {c.subsample} users per base ({', '.join(bagged)}) on {cfg.data.dataset}, "
            f"top-{c.top_n} certified for 0..{c.max_fakes} fake users"
        )
    if "ablation" in c.bases:
        out.append(
            f"{cfg.model.name} smoothed by randomized ablation ({c.ablation_votes} votes per user) on "
            f"{cfg.data.dataset}, top-{c.top_n} certified for 0..{c.max_radius} substituted history items"
        )
    return "; ".join(out)


def _rows(label: str, total: int, r: np.ndarray, relevant: np.ndarray, top_n: int, hr=None) -> list[dict]:
    precision, recall = curve(r, relevant, top_n)
    rows = [
        {
            "base": label,
            "sub_models": total,
            "fakes": e,
            f"certified_precision@{top_n}": float(p),
            f"certified_recall@{top_n}": float(q),
            "failed": False,
        }
        for e, (p, q) in enumerate(zip(precision, recall))
    ]
    for row, h in zip(rows, () if hr is None else hr):
        row[f"target_hr_bound@{top_n}"] = float(h)
    return rows


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    c, split, log = cfg.certify, plan.split, say(console, progress)
    fakes = np.arange(c.max_fakes + 1)
    relevant, unseen = pairs_mask(split, ("test",)), ~pairs_mask(split)
    rows, ensembles, certified, timing = [], [], {}, {}
    eligible = ~pairs_mask(split, ("train", "valid", "test"))[:, plan.targets]  # [U, T] never interacted

    def bound(votes, total):
        if not plan.targets.size:
            return None
        return target_bound(votes, total, plan.targets, eligible, unseen, c.top_n, c.subsample, c.alpha, fakes)

    ablation, ablation_summary = [], []
    for base in c.bases:
        if base == "ablation":  # against pollution: rows per radius, not per fake count
            found, summary, times = certify_ablation.ablation_rows(cfg, split, log)
            ablation += found
            ablation_summary.append(summary)
            timing.update(times)
            continue
        ens = ensemble(cfg, split, base, log)
        label = cfg.model.name if base == "model" else base
        ens = dataclasses.replace(ens, base=label)
        r = certify(ens.votes, c.sub_models, relevant, unseen, c.top_n, c.votes, c.subsample, c.alpha, fakes)
        rows += _rows(label, c.sub_models, r, relevant, c.top_n, bound(ens.votes, c.sub_models))
        ensembles.append(ens)
        certified[label] = r
        if c.extrapolate:  # the same vote frequencies from more bases: what a larger T would certify
            scaled = np.rint(ens.votes * (c.extrapolate / c.sub_models)).astype(np.int64)
            r = certify(scaled, c.extrapolate, relevant, unseen, c.top_n, c.votes, c.subsample, c.alpha, fakes)
            rows += _rows(f"{label} (extrapolated)", c.extrapolate, r, relevant, c.top_n, bound(scaled, c.extrapolate))
            certified[f"{label} (extrapolated)"] = r
        timing[f"{label}_s"] = ens.seconds
        timing[f"{label}_sub_models_per_s"] = c.sub_models / ens.seconds
    for ref in plan.references:  # PORE's published votes, certified by the same code
        ref: Reference
        r = certify(ref.votes, ref.sub_models, ref.relevant, None, c.top_n, ref.n_votes, ref.subsample, c.alpha, fakes)
        rows += _rows(ref.label, ref.sub_models, r, ref.relevant, c.top_n)
        certified[ref.label] = r
    timing["wall_s"] = sum(e.seconds for e in ensembles)
    summary = summarise(rows, ["base", "sub_models", "fakes"]) if rows else []
    return StudyResult(NAME, cfg, rows, summary, timing, Extras(ensembles, certified, ablation, ablation_summary))


# ------------------------------------------------------------------------------------------------
# report


def tables(result: StudyResult) -> list[Table]:
    """The ensembles (clean accuracy, cost), then certified precision and recall at chosen e."""
    c = result.config.certify
    n = c.top_n
    header = ["base", "T", f"precision@{n}", f"recall@{n}", f"ndcg@{n}", "seconds", "bases/s", "peak RSS MB"]
    rows = [
        [
            e.base,
            str(e.sub_models),
            f"{e.metrics[f'precision@{n}']:.4f}",
            f"{e.metrics[f'recall@{n}']:.4f}",
            f"{e.metrics[f'ndcg@{n}']:.4f}",
            f"{e.seconds:.1f}",
            f"{e.sub_models / e.seconds:.1f}",
            f"{e.peak_rss_mb:.0f}",
        ]
        for e in result.extras.ensembles
    ]
    out = [Table(f"the ensembles: clean test accuracy of their top-{n}, and their cost", header, rows)] if rows else []
    shown = [e for e in SHOWN_FAKES if e <= c.max_fakes]
    by_base: dict = {}
    for s in result.summary:
        by_base.setdefault((s["base"], s["sub_models"]), {})[s["fakes"]] = s
    titles = {
        f"certified_precision@{n}": f"certified_precision@{n} against e fake users",
        f"certified_recall@{n}": f"certified_recall@{n} against e fake users",
        f"target_hr_bound@{n}": f"target_hr_bound@{n}: the most HR@{n} that e fake users can give "
        f"{c.targets} unpopular targets",
    }
    for metric, title in titles.items():
        body = [
            [b, str(t), *(f"{cells[e][metric + '_mean']:.4f}" for e in shown)]
            for (b, t), cells in by_base.items()
            if metric + "_mean" in cells[0]
        ]
        if body:
            out.append(Table(f"{title} (confidence {1 - c.alpha:g})", ["base", "T", *map(str, shown)], body))
    return out + ablation_tables(result)


def ablation_tables(result: StudyResult) -> list[Table]:
    """The randomized-ablation recommender: certified accuracy against r, and its clean cost."""
    x = result.extras
    if not x.ablation:
        return []
    n = result.config.certify.top_n
    radii = sorted({r["radius"] for r in x.ablation})
    body = [
        [f"{r['base']} ({metric})", *(f"{q[metric]:.4f}" for q in x.ablation if q["base"] == r["base"])]
        for r in x.ablation
        if r["radius"] == 0
        for metric in (f"certified_hit@{n}", f"certified_ndcg@{n}")
    ]
    header = ["smoothed recommender", *map(str, radii)]
    out = [
        Table(
            f"certified against r substituted history items (confidence {1 - result.config.certify.alpha:g})",
            header,
            body,
        )
    ]
    keys = [k for k in x.ablation_summary[0] if k != "base"]
    out.append(
        Table(
            "randomized ablation: the smoothed recommender's clean cost",
            ["base", *keys],
            [
                [s["base"], *(f"{s[k]:.4g}" if isinstance(s[k], float) else str(s[k]) for k in keys)]
                for s in x.ablation_summary
            ],
        )
    )
    return out


def footer(result: StudyResult) -> str:
    """The line after the tables: each ensemble's size and time."""
    done = ", ".join(f"{e.base}: {e.sub_models} bases in {e.seconds:.1f} s" for e in result.extras.ensembles)
    return f"{done}; {len(result.rows)} rows"


def plots(result: StudyResult, run_dir: Path) -> list[Path]:
    n = result.config.certify.top_n
    out = [
        plot_curves(result.summary, "fakes", m, ["base", "sub_models"], run_dir / f"{m}.png", m, "fake users e")
        for m in (f"certified_precision@{n}", f"certified_recall@{n}", f"target_hr_bound@{n}")
        if result.summary and f"{m}_mean" in result.summary[0]
    ]
    ablation = [
        {**r, **{f"{k}_mean": v for k, v in r.items()}, **{f"{k}_std": 0.0 for k in r}} for r in result.extras.ablation
    ]
    for m in (f"certified_hit@{n}", f"certified_ndcg@{n}") if ablation else ():
        path = run_dir / f"ablation_{m}.png"
        out.append(plot_curves(ablation, "radius", m, ["base"], path, m, "substituted history items r"))
    return out


def _key(label: str) -> str:
    return label.replace(" ", "_").replace("(", "").replace(")", "")


def write_report(result: StudyResult, run_dir: Path) -> None:
    """``config.yaml``, ``results.csv``, ``results.json``, ``certified_r.npz`` (per base ``[U, E]``
    certified ``r``), ``votes.npz`` (per base ``[U, I]`` vote counts), plots, ``report.md``."""
    cfg, c = result.config, result.config.certify
    figures = plots(result, run_dir)
    ensembles = [
        {"base": e.base, "sub_models": e.sub_models, **e.metrics, "seconds": e.seconds, "peak_rss_mb": e.peak_rss_mb}
        for e in result.extras.ensembles
    ]
    payload = {
        "rows": result.rows,
        "summary": result.summary,
        "ensembles": ensembles,
        "ablation": result.extras.ablation,
        "ablation_summary": result.extras.ablation_summary,
        "timing": result.timing,
    }
    write_results(cfg, result.rows, payload, command=NAME)
    with open(run_dir / "certified_r.npz", "wb") as f:
        np.savez_compressed(f, **{_key(k): v for k, v in result.extras.certified.items()})
    with open(run_dir / "votes.npz", "wb") as f:
        np.savez_compressed(f, **{_key(e.base): e.votes for e in result.extras.ensembles})
    intro = [
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}. T = {c.sub_models} bases per "
        f"kind, each on s = {c.subsample} users drawn without replacement; each votes for its top N' = {c.votes} "
        f"unseen items; the ensemble recommends the N = {c.top_n} most voted.",
        f"Certificate (PORE, Jia et al. 2023): confidence 1 - {c.alpha:g} (Clopper-Pearson, Bonferroni over every "
        "(user, item)); r = the user's test items certified to stay in the top-N for any e fake users.",
    ]
    if "model" in c.bases:
        intro.append(
            f"The model base: `{cfg.model.name}`, {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, lr "
            f"{cfg.train.lr}, its sub-models trained as members of one program per chunk of {c.chunk}."
        )
    if "transition" in c.bases:
        intro.append(f"The transition base: a Markov chain over the last {c.order} items, weights {c.decay}^(p-1).")
    if "ablation" in c.bases:
        intro.append(
            f"The ablation base: `{cfg.model.name}` trained once ({cfg.train.epochs} epochs); {c.ablation_votes} "
            f"votes per test user, each seeing {c.ablation_keep} of the last {c.ablation_last} history items and "
            f"voting for its top {c.votes}; certified against r = 0..{c.max_radius} substituted history items."
        )
    text = markdown_report(f"{cfg.name}: certified ensembles", intro, tables(result), figures, result.timing)
    atomic_write(run_dir / "report.md", text)
