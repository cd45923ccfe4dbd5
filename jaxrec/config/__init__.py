"""Experiment configuration: YAML -> typed, frozen dataclasses.

:mod:`~jaxrec.config.schema` holds the sections (``data``, ``model``, ``train``, ``eval``, ``gan``,
``adv``, ``robustness``, ``attack``, ``checkpoint``, ``parallel``), each field's range written once
next to it (:mod:`~jaxrec.config.rules`); :mod:`~jaxrec.config.load` reads YAML and ``--set``
overrides (dotted paths, ``--set train.epochs=50 eval.ks=[10,20]``, the value parsed as YAML)
into them. Every mistake is one error naming the key and the value, and the file or the
``--set`` that gave it. Only the experiment layer and the CLI import this package.
"""

from jaxrec.config.load import apply_overrides, from_dict, load_config, save_config, to_dict, validate
from jaxrec.config.schema import (
    RENAMED,
    AdvConfig,
    AttackConfig,
    CertifyConfig,
    CheckpointConfig,
    Config,
    DataConfig,
    EvalConfig,
    GANConfig,
    ModelConfig,
    OptimizedConfig,
    ParallelConfig,
    RobustnessConfig,
    TrainConfig,
)

__all__ = [
    "RENAMED",
    "AdvConfig",
    "AttackConfig",
    "CheckpointConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "GANConfig",
    "ModelConfig",
    "CertifyConfig",
    "OptimizedConfig",
    "ParallelConfig",
    "RobustnessConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
    "validate",
]
