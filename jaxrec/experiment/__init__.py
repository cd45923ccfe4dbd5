"""The experiment layer: configuration -> plain arguments -> a run or a study, end to end.

Only this layer and the CLI read config dataclasses. :func:`run` trains and tests one
configuration (``jaxrec train``); :func:`train_members` trains many as members of one compiled
program (:mod:`~jaxrec.experiment.programs` keys the programs); the studies
(:mod:`~jaxrec.experiment.studies`: ``sweep``, ``robustness``, ``attack``, ``gan``) have one shape
and one report module (:mod:`~jaxrec.experiment.report`). :func:`sweep`, :func:`run_robustness`,
:func:`run_attack` and :func:`run_gan` run a study from Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxrec.config import Config
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.experiment.data import load_split
from jaxrec.experiment.models import build_model
from jaxrec.experiment.studies import STUDIES, StudyResult, execute, run_study
from jaxrec.experiment.studies.sweep import parse_grid
from jaxrec.experiment.training import (
    MEMBER_KEYS,
    MembersRun,
    RunResult,
    Training,
    build_training,
    run,
    train_members,
)


def sweep(
    cfg: Config, grid: Mapping[str, Sequence[Any]] | Sequence[tuple[str, Sequence[Any]]], **kwargs: Any
) -> StudyResult:
    """``jaxrec sweep``: every combination of ``grid`` (``[(key, values)]`` or ``{key: values}``)
    trained as members of as few programs as possible (:mod:`~jaxrec.experiment.studies.sweep`)."""
    return run_study("sweep", cfg, grid=grid, **kwargs)


def run_robustness(cfg: Config, **kwargs: Any) -> StudyResult:
    """``jaxrec robustness`` (:mod:`~jaxrec.experiment.studies.robustness`)."""
    return run_study("robustness", cfg, **kwargs)


def run_attack(cfg: Config, **kwargs: Any) -> StudyResult:
    """``jaxrec attack`` (:mod:`~jaxrec.experiment.studies.attack`)."""
    return run_study("attack", cfg, **kwargs)


def run_gan(cfg: Config, **kwargs: Any) -> StudyResult:
    """``jaxrec gan`` (:mod:`~jaxrec.experiment.studies.gan`)."""
    return run_study("gan", cfg, **kwargs)


__all__ = [
    "MEMBER_KEYS",
    "MembersRun",
    "RunResult",
    "STUDIES",
    "StudyResult",
    "Training",
    "build_model",
    "build_training",
    "checkpointer_for",
    "execute",
    "load_split",
    "parse_grid",
    "run",
    "run_attack",
    "run_gan",
    "run_robustness",
    "run_study",
    "sweep",
    "train_members",
]
