"""Rendering of robustness and attack results: pivot tables (markdown and rich) and PNG plots
(curves over strengths or attack sizes, detector ROC curves).

The functions take *summary* rows (dicts with setting keys and ``<metric>_mean`` /
``<metric>_std`` over seeds, as :func:`jaxrec.experiment.sweep.summarise` writes them) and know
nothing of configs. Plots use matplotlib's headless Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def cell(rec: dict, metric: str, digits: int = 4) -> str:
    """``mean ± std`` of ``metric`` in a summary row (``-`` when absent)."""
    if f"{metric}_mean" not in rec:
        return "-"
    return f"{rec[f'{metric}_mean']:.{digits}f} ± {rec[f'{metric}_std']:.{digits}f}"


def pivot(summary: list[dict], row_keys: Sequence[str], col_key: str, metric: str, digits: int = 4):
    """``(header, rows)``: one row per value of ``row_keys``, one column per value of
    ``col_key``, cells ``mean ± std`` of ``metric``."""
    cols = sorted({r[col_key] for r in summary})
    table: dict = {}
    for r in summary:
        table.setdefault(tuple(r[k] for k in row_keys), {})[r[col_key]] = cell(r, metric, digits)
    header = [*row_keys, *(f"{col_key}={c:g}" if isinstance(c, float) else f"{col_key}={c}" for c in cols)]
    rows = [[*map(str, key), *(vals.get(c, "-") for c in cols)] for key, vals in table.items()]
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str):
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


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
) -> Path:
    """``metric`` (mean, with a ± std band over seeds) against ``x``, one curve per value of
    ``groups`` (e.g. victim and method); a PNG of ``size`` inches at ``dpi``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def plot_roc(
    curves: dict, path: str | Path, title: str, size: tuple[float, float] = (5.0, 5.0), dpi: int = 100
) -> Path:
    """ROC curves ``{label: (fpr [n], tpr [n], auc)}`` with the chance diagonal; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
