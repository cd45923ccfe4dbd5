"""The experiment layer: configuration -> plain arguments -> one run or a sweep, end to end.

Only this layer and the CLI read config dataclasses. :func:`run` trains and tests one
configuration (``jaxrec train``); :func:`sweep` trains a grid of them as members of as few
compiled programs as their shapes allow (``jaxrec sweep``); :func:`run_robustness` perturbs
trained victims and their data (``jaxrec robustness``); :func:`run_attack` injects fake users and
retrains victims with their defenses (``jaxrec attack``).
"""

from jaxrec.experiment.attack import AttackResult, run_attack
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.experiment.data import SPLITS, load_split
from jaxrec.experiment.models import build_model
from jaxrec.experiment.robustness import RobustnessResult, run_robustness
from jaxrec.experiment.sweep import SweepResult, parse_grid, sweep
from jaxrec.experiment.training import (
    MEMBER_KEYS,
    MembersRun,
    RunResult,
    Training,
    build_training,
    results_table,
    run,
    train_members,
)

__all__ = [
    "AttackResult",
    "MEMBER_KEYS",
    "MembersRun",
    "RobustnessResult",
    "RunResult",
    "SPLITS",
    "SweepResult",
    "Training",
    "build_model",
    "build_training",
    "checkpointer_for",
    "load_split",
    "parse_grid",
    "results_table",
    "run",
    "run_attack",
    "run_robustness",
    "sweep",
    "train_members",
]
