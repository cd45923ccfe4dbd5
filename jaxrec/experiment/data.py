"""Splits for an experiment: read -> clean -> split, as the config's ``data`` section says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import jaxrec.data as D
from jaxrec.config import DataConfig
from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.split import SPLITS, event_order
from jaxrec.errors import JaxrecError, config_key


def _clean(
    inter: Interactions, cfg: DataConfig, compact: bool, keep_ratings: bool, dedupe: bool = True
) -> Interactions:
    if dedupe:
        inter = D.deduplicate(inter)
    if keep_ratings and inter.ratings is not None:
        return inter
    if keep_ratings and keep_ratings != "if_rated":
        raise JaxrecError(f"data.dataset: {inter.source} has no ratings (the attack protocol needs rated data)")
    if inter.ratings is not None:
        inter = D.to_implicit(inter, cfg.implicit_threshold, compact=compact)
    elif cfg.implicit_threshold is not None:
        raise JaxrecError(f"data.implicit_threshold: {inter.source} has no ratings to threshold")
    return inter


def event_settings(cfg: DataConfig) -> tuple[str, str]:
    """``data.order`` and ``data.loo_rule`` resolved: a named data set released in time order
    without timestamps (amazon-games) reads its rows in file order with the SASRec rule; any
    other data orders by time with RecBole's rule, unless the config says otherwise."""
    spec = D.DATASETS.get(cfg.dataset)
    file_order = spec is not None and spec.file_order
    order = cfg.order if cfg.order != "auto" else ("file" if file_order else "time")
    rule = cfg.loo_rule if cfg.loo_rule != "auto" else ("sasrec" if file_order else "recbole")
    return order, rule


def load_split(cfg: DataConfig, keep_ratings: bool | str = False, sequential: bool = False) -> Split:
    """Load, clean and split the data the config names.

    Order: read -> deduplicate -> implicit feedback (every rating a positive, or rating >=
    ``implicit_threshold``) -> k-core -> split. Predefined splits (LightGCN files, or
    ``test_path``) keep their id space; k-core filtering is refused for them.

    ``sequential``: the data of a sequence model: ``data.deduplicate`` defaults to false (a
    re-consumption is an event) and the split must be ``leave_one_out``.

    ``keep_ratings``: skip the implicit-feedback step (every rated row stays, with its rating;
    the attack protocol thresholds after injecting fake users); ``"if_rated"``: the same when the
    data has ratings, else the plain path.
    """
    if cfg.split not in SPLITS:
        raise JaxrecError(f"data.split: unknown split {cfg.split!r}; choose one of {SPLITS}")
    if sequential and cfg.split != "leave_one_out":
        raise JaxrecError(
            f"data.split: {cfg.split!r}, but a sequence model trains on each user's ordered events: use leave_one_out"
        )
    dedupe = cfg.deduplicate if cfg.deduplicate is not None else not sequential
    table = dict(
        user_col=cfg.user_col,
        item_col=cfg.item_col,
        rating_col=cfg.rating_col,
        time_col=cfg.time_col,
        delimiter=cfg.delimiter,
        columns=cfg.columns,
    )
    if cfg.test_path is not None:
        loaded = D.read_split_files(cfg.dataset, cfg.test_path, cfg.valid_path, **table)
    else:
        is_table = (
            cfg.dataset not in D.DATASETS
            and Path(cfg.dataset).is_file()
            and (Path(cfg.dataset).name not in D.loaders.ML_FILES)
        )
        loaded = D.load_dataset(cfg.dataset, **(table if is_table else {}))
    if isinstance(loaded, Split):
        if cfg.split != "predefined":
            raise JaxrecError(
                f"data.split: {cfg.dataset} comes with a predefined train/test split; "
                f"set data.split: predefined (got {cfg.split!r})"
            )
        if cfg.user_core or cfg.item_core:
            raise JaxrecError("data.user_core/item_core: k-core filtering would break a predefined split")
        parts = [
            None if p is None else _clean(p, cfg, False, keep_ratings, dedupe)
            for p in (loaded.train, loaded.valid, loaded.test)
        ]
        return Split(train=parts[0], valid=parts[1], test=parts[2], info=D.split_info(*parts))
    if cfg.split == "predefined":
        raise JaxrecError(f"data.split: predefined, but {cfg.dataset} is a single file (give data.test_path)")
    inter = _clean(loaded, cfg, True, keep_ratings, dedupe)
    if cfg.user_core or cfg.item_core:
        inter = D.kcore(inter, cfg.user_core, cfg.item_core)
    if cfg.split == "random":
        return D.random_ratio(inter, cfg.ratios, seed=cfg.seed)
    if cfg.split == "temporal":
        return D.temporal_ratio(inter, cfg.ratios)
    order, rule = event_settings(cfg)
    with config_key("data.order"):
        event_order(inter, order, "leave_one_out")
    if not np.any(inter.user_counts() >= (3 if rule == "sasrec" else 2)):
        raise JaxrecError(
            f"data.loo_rule: no user of {cfg.dataset} has enough events for a test item under the {rule} rule "
            "(sasrec: 3 events, recbole: 2)"
        )
    return D.leave_one_out(inter, valid=len(cfg.ratios) == 3 and cfg.ratios[1] > 0, order=order, rule=rule)
