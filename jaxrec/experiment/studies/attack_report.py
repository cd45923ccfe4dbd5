"""The attack study's report: target HR and shift per size, the defense table, the detectors,
the optimized attacks' outer steps, plots and ``report.md`` (:mod:`~jaxrec.experiment.studies.attack`
runs the study)."""

from __future__ import annotations

from pathlib import Path

from jaxrec.experiment.output import atomic_write, write_results
from jaxrec.experiment.report import Table, cell, markdown_report, plot_curves, plot_roc
from jaxrec.experiment.studies.base import StudyResult, summarise

NAME = "attack"  #: the study's name, for its run directory


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
    if result.extras.tuning:
        out.append(tuning_table(result.extras.tuning))
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


def tuning_table(tuning: list[dict]) -> Table:
    """The closed attack's settings tried on the attacker's proxies (``tune_closed``'s rows): each
    proxy's target HR@K, their mean, and the one chosen."""
    figures = [k for k in tuning[0] if k.startswith("proxy_")]
    names = [k.removeprefix("proxy_") for k in figures]
    header = ["lam", "kappa", *names[:-1], f"mean {names[-1]}", "chosen"]
    rows = [
        [f"{r['lam']:g}", f"{r['kappa']:g}", *(f"{r[k]:.4f}" for k in figures), "yes" if r["chosen"] else ""]
        for r in tuning
    ]
    return Table(
        "closed: settings tried on the attacker's proxy victims (target HR on real users, training data only)",
        header,
        rows,
    )


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
        "tuning": x.tuning,
        "timing": result.timing,
        "fake_users": sc.counts,
        "n_real_users": sc.n_real,
        "filler": sc.filler,
        "trusted_users": sc.trusted.size,
        "plots": [p.name for p in figures],
    }
    write_results(cfg, result.rows, payload, command=NAME)
    sequences = "order" in sc.split.info  # fake sequences against sequence victims
    lengths = f"lengths {a.filler}" if a.filler else "lengths drawn from the real users' training lengths"
    intro = [
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}; "
        + (
            "every event in its sequence (fake sequences join the training part). "
            if sequences
            else f"ratings >= {a.threshold} are positives after the fake users join the training part. "
        )
        + "Test set, full ranking.",
        f"Targets (raw item ids, attacked jointly, {'push' if sequences else a.intent}): {x.targets}. Attacks: "
        f"{', '.join(a.kinds)}; fake users {sc.counts} of {sc.n_real} real; "
        + (f"fake sequences of {lengths}, the targets interleaved" if sequences else f"filler {sc.filler} items")
        + f"; {a.seeds} seed(s).",
        f"Detectors: {', '.join(a.detectors) or 'none'}, threshold at FPR {a.fpr} on {sc.trusted.size} trusted "
        f"real users. Wall time: {result.timing['wall_s']:.1f} s.",
    ]
    text = markdown_report(f"Attack report: {cfg.name}", intro, tables(result), figures, result.timing)
    atomic_write(run_dir / "report.md", text)
