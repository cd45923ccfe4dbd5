"""What ``jaxrec train`` leaves in its run directory: ``metrics.json`` (test metrics, epochs,
timing, the split's counts, the protocol), ``history.jsonl``, the model (:mod:`jaxrec.experiment.saved`)
and ``report.md`` with the training curve (``training.png``)."""

from __future__ import annotations

from pathlib import Path

from jaxrec.config import Config
from jaxrec.data.interactions import Split
from jaxrec.experiment.output import atomic_write, write_run
from jaxrec.experiment.report import markdown_report, metrics_table, plot_training
from jaxrec.experiment.saved import save_model
from jaxrec.train.loop import FitResult


def write_train_run(cfg: Config, metrics: dict, result: FitResult, split: Split, timing: dict) -> Path:
    """``runs/<name>/`` of a finished ``jaxrec train``; returns the directory."""
    out = {
        **metrics,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        **timing,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "split": dict(split.info),
        "protocol": cfg.eval.protocol,
    }
    run_dir = write_run(cfg, out, result.history, command="train")
    save_model(run_dir, cfg, result.best_params, split, result.best_epoch)  # the metrics' parameters
    title = f"{cfg.name}: {cfg.model.name} on {cfg.data.dataset}"
    plot = plot_training(result.history, cfg.train.monitor, run_dir / "training.png", title)
    intro = [
        f"`jaxrec train`: {result.epochs} epochs, test metrics of epoch {result.best_epoch} ({cfg.eval.protocol} "
        f"ranking); {split.n_users} users, {split.n_items} items, {len(split.train)} training interactions.",
        "The model is saved in `model/` (`jaxrec recommend`, `jaxrec export`, `jaxrec.load_run`).",
    ]
    table = metrics_table(metrics, f"test ({cfg.eval.protocol}, best epoch {result.best_epoch})")
    atomic_write(run_dir / "report.md", markdown_report(title, intro, [table], [plot], timing))
    return run_dir
