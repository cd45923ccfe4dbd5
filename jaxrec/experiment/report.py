"""The one report module: tables (markdown and rich), plots (matplotlib Agg) and report assembly.

Every command and study shows its results the same way: a list of :class:`Table` (a title, a
header, rows of strings) that the CLI prints with rich (:func:`rich_table`) and ``report.md``
writes as markdown (:func:`markdown_report`), next to PNG plots. The functions take plain rows --
summary rows hold setting keys and ``<metric>_mean`` / ``<metric>_std`` over seeds, as
:func:`jaxrec.experiment.studies.base.summarise` writes them -- and know nothing of configs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from jaxrec.evaluate import METRICS


class Table(NamedTuple):
    """One table of a report: ``title``, ``header [C]`` and ``rows [R][C]`` of strings."""

    title: str
    header: list[str]
    rows: list[list[str]]


def cell(rec: dict, metric: str, digits: int = 4) -> str:
    """``mean ± std`` of ``metric`` in a summary row (``-`` when absent)."""
    if f"{metric}_mean" not in rec:
        return "-"
    return f"{rec[f'{metric}_mean']:.{digits}f} ± {rec[f'{metric}_std']:.{digits}f}"


def pivot(title: str, summary: list[dict], row_keys: Sequence[str], col_key: str, metric: str, digits: int = 4):
    """A :class:`Table` with one row per value of ``row_keys``, one column per value of ``col_key``,
    cells ``mean ± std`` of ``metric``."""
    cols = sorted({r[col_key] for r in summary})
    table: dict = {}
    for r in summary:
        table.setdefault(tuple(r[k] for k in row_keys), {})[r[col_key]] = cell(r, metric, digits)
    header = [*row_keys, *(f"{col_key}={c:g}" if isinstance(c, float) else f"{col_key}={c}" for c in cols)]
    rows = [[*map(str, key), *(vals.get(c, "-") for c in cols)] for key, vals in table.items()]
    return Table(title, header, rows)


def metrics_table(metrics: dict, title: str = "test") -> Table:
    """One run's ranking metrics: a row per metric (recall, ndcg, ...), a column per K."""
    ks = sorted({int(k.split("@")[1]) for k in metrics if "@" in k and k.split("@")[0] in METRICS})
    names = [m for m in METRICS if any(f"{m}@{k}" in metrics for k in ks)]
    rows = [[m, *(f"{metrics[f'{m}@{k}']:.4f}" if f"{m}@{k}" in metrics else "-" for k in ks)] for m in names]
    return Table(title, ["metric", *(f"@{k}" for k in ks)], rows)


def records_table(title: str, records: list[dict], digits: int = 4) -> Table:
    """Rows of plain records (floats at ``digits``), their keys as the header."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    return Table(title, keys, [[fmt(r[k]) if k in r else "-" for k in keys] for r in records])


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def rich_table(table: Table):
    """A rich Table (the CLI prints these)."""
    from rich.table import Table as RichTable

    out = RichTable(title=table.title)
    for i, h in enumerate(table.header):
        out.add_column(h, justify="left" if i == 0 else "right")
    for row in table.rows:
        out.add_row(*row)
    return out


def markdown_report(
    title: str, intro: Sequence[str], tables: Sequence[Table], plots: Sequence[Path], timing: dict
) -> str:
    """``report.md``: a title, the ``intro`` lines (what was run), every table, every plot and the
    timings."""
    lines = [f"# {title}", "", *intro, ""]
    for t in tables:
        lines += [f"## {t.title}", "", markdown_table(t)]
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    lines += ["## timing (s)", "", "```", json.dumps(timing, indent=1), "```", ""]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    summary: list[dict],
    x: str,
    metric: str,
    groups: Sequence[str],
    path: str | Path,
    title: str,
    xlabel: str | None = None,
    size: tuple[float, float] = (7.0, 4.5),
    dpi: int = 100,
    log: bool = False,
) -> Path:
    """``metric`` (mean, with a ± std band over seeds) against ``x``, one curve per value of
    ``groups`` (e.g. victim and method); a PNG of ``size`` inches at ``dpi`` (``log``: both axes
    logarithmic, for cost curves)."""
    plt = _pyplot()
    curves: dict = {}
    for r in summary:
        if f"{metric}_mean" in r:
            curves.setdefault(tuple(r[g] for g in groups), []).append(r)
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    for i, (key, rs) in enumerate(sorted(curves.items())):
        rs = sorted(rs, key=lambda r: r[x])
        xs = [r[x] for r in rs]
        mean = [r[f"{metric}_mean"] for r in rs]
        std = [r[f"{metric}_std"] for r in rs]
        style = ("-", "--", ":", "-.")[(i // 10) % 4]  # the colour cycle has 10 colours
        line = ax.plot(xs, mean, marker="o", linestyle=style, label=" / ".join(map(str, key)))[0]
        ax.fill_between(
            xs,
            [m - s for m, s in zip(mean, std)],
            [m + s for m, s in zip(mean, std)],
            color=line.get_color(),
            alpha=0.2,
        )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_training(history: list[dict], monitor: str, path: str | Path, title: str, dpi: int = 100) -> Path:
    """A run's training curve: the loss per epoch and, when validated, ``valid/<monitor>``
    beside it; a PNG."""
    plt = _pyplot()
    valid = [(r["epoch"], r[f"valid/{monitor}"]) for r in history if f"valid/{monitor}" in r]
    fig, axes = plt.subplots(1, 2 if valid else 1, figsize=(10.0 if valid else 5.5, 4.0), dpi=dpi, squeeze=False)
    curves = [("loss", [(r["epoch"], r["loss"]) for r in history if "loss" in r])]
    curves += [(f"valid {monitor}", valid)] if valid else []
    for ax, (label, points) in zip(axes[0], curves):
        ax.plot([e for e, _ in points], [v for _, v in points], marker="o" if len(points) < 40 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_roc(
    curves: dict, path: str | Path, title: str, size: tuple[float, float] = (5.0, 5.0), dpi: int = 100
) -> Path:
    """ROC curves ``{label: (fpr [n], tpr [n], auc)}`` with the chance diagonal; a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    for label, (fpr, tpr, auc) in sorted(curves.items()):
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate (real users flagged)")
    ax.set_ylabel("true-positive rate (fake users flagged)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
