"""What ``jaxrec attack`` writes: ``<output_dir>/<name>/{config.yaml, results.json, results.csv,
report.md}``, ``target_hr@K_vs_size_<attack>.png`` (one curve per victim model and defense, ± std
over seeds, size 0 = the clean victim) and ``roc_<attack>.png`` (every detector at the largest
size, seed 0)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jaxrec.config import Config
from jaxrec.experiment.output import atomic_write, run_dir_of, write_results
from jaxrec.robustness import report


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


def size_table(summary: list[dict], metric: str, digits: int = 4) -> tuple[list, list]:
    """``(header, rows)``: per (model, defense, attack) ``metric`` before the attack (size 0) and
    at every size, ``mean ± std`` over seeds."""
    curves = _with_clean(summary)
    sizes = sorted({k for c in curves.values() for k in c})
    header = ["model", "defense", "attack", *("clean" if n == 0 else f"{n} fakes" for n in sizes)]
    rows = [[*key, *(report.cell(c[n], metric, digits) if n in c else "-" for n in sizes)] for key, c in curves.items()]
    return header, rows


def detection_table(det_summary: list[dict]) -> tuple[list, list]:
    """``(header, rows)``: per (detector, attack, size) precision, recall, ROC-AUC, flagged users."""
    header = ["detector", "attack", "fakes", "precision", "recall", "ROC-AUC", "flagged (real)"]
    rows = [
        [
            d["detector"],
            d["attack"],
            str(d["size"]),
            report.cell(d, "precision", 3),
            report.cell(d, "recall", 3),
            report.cell(d, "auc", 3),
            f"{d['flagged_mean']:.1f} ({d['real_flagged_mean']:.1f})",
        ]
        for d in det_summary
    ]
    return header, rows


def tables(cfg: Config, result) -> list[tuple[str, list, list]]:
    """``(title, header, rows)`` of the report's tables."""
    ks = sorted(cfg.eval.ks)
    out = []
    for k in ks:
        out.append(
            (
                f"target HR@{k} (real users who never interacted with a target), mean ± std over seeds",
                *size_table(result.summary, f"target_hr@{k}"),
            )
        )
    out.append(
        ("target prediction shift (poisoned minus clean score)", *size_table(result.summary, "target_score_shift"))
    )
    k = ks[len(ks) // 2]
    out.append(
        (f"relative drop of test NDCG@{k} (1 - poisoned / clean)", *size_table(result.summary, f"drop_ndcg@{k}", 3))
    )
    if result.detection_summary:
        out.append(
            (
                "detectors: flag users above the threshold set at attack.fpr on trusted real users",
                *detection_table(result.detection_summary),
            )
        )
    return out


def plot_all(cfg: Config, result, run_dir: Path) -> list[Path]:
    """Target HR@K (smallest and largest K) against the attack size per attack; ROC curves."""
    ks = sorted(cfg.eval.ks)
    plots = []
    curves = []
    for (model, defense, attack), cells in _with_clean(result.summary).items():
        curves += [{**s, "model": model, "defense": defense, "attack": attack, "size": n} for n, s in cells.items()]
    for attack in dict.fromkeys(c["attack"] for c in curves):
        mine = [c for c in curves if c["attack"] == attack]
        for k in dict.fromkeys((ks[0], ks[-1])):
            m = f"target_hr@{k}"
            plots.append(
                report.plot_curves(
                    mine,
                    "size",
                    m,
                    ["model", "defense"],
                    run_dir / f"{m}_vs_size_{attack}.png",
                    f"{attack} attack: {m}",
                    "fake users (0: clean)",
                )
            )
    for attack in dict.fromkeys(a for a, _ in result.roc):
        roc = {d: c for (a, d), c in result.roc.items() if a == attack}
        plots.append(report.plot_roc(roc, run_dir / f"roc_{attack}.png", f"detectors vs the {attack} attack"))
    return plots


def markdown(cfg: Config, result, setup, plots) -> str:
    a = cfg.attack
    lines = [
        f"# Attack report: {cfg.name}",
        "",
        f"Data: `{cfg.data.dataset}`, split `{cfg.data.split}` {list(cfg.data.ratios)}; ratings >= {a.threshold} are "
        "positives after the fake users join the training part. Test set, full ranking.",
        f"Targets (raw item ids, attacked jointly, {a.intent}): {result.targets}. Attacks: {', '.join(a.kinds)}; "
        f"fake users {setup.counts} of {setup.n_real} real; filler {setup.filler} items; {a.seeds} seed(s).",
        f"Detectors: {', '.join(a.detectors) or 'none'}, threshold at FPR {a.fpr} on {setup.trusted.size} trusted "
        f"real users. Wall time: {result.timing['wall_s']:.1f} s.",
        "",
    ]
    for title, header, rows in tables(cfg, result):
        lines += [f"## {title}", "", report.markdown_table(header, rows)]
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    lines += ["## timing (s)", "", "```", json.dumps(result.timing, indent=1), "```", ""]
    return "\n".join(lines)


def write_report(cfg: Config, result, setup) -> Path:
    """Write every output of an attack study; returns the run directory."""
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_all(cfg, result, run_dir)
    payload = {
        **{f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in ("roc", "run_dir")},
        "fake_users": setup.counts,
        "n_real_users": setup.n_real,
        "filler": setup.filler,
        "trusted_users": setup.trusted.size,
        "plots": [p.name for p in plots],
    }
    write_results(cfg, result.rows, payload, command="attack")
    atomic_write(run_dir / "report.md", markdown(cfg, result, setup, plots))
    return run_dir
