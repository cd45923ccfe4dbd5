"""Experiment configuration: YAML -> typed, frozen dataclasses.

:mod:`~jaxrec.config.schema` holds the sections (``data``, ``model``, ``train``, ``eval``, ``gan``,
``adv``, ``robustness``, ``attack``, ``checkpoint``, ``parallel``), each field's range written once
next to it (:mod:`~jaxrec.config.rules`); :mod:`~jaxrec.config.load` reads YAML and ``--set``
overrides (dotted paths, ``--set train.epochs=50 eval.ks=[10,20]``, the value parsed as YAML)
into them; a config is a file or the name of one shipped with jaxrec (``load_config("ml100k-mf")``,
:func:`~jaxrec.config.load.resolve_config`). Every mistake is one error naming the key and the
value, and the file or the ``--set`` that gave it; a section built in Python is checked by the same
rules when it is built (``TrainConfig(epochs=-1)``). Only the experiment layer and the CLI import
this package.
"""

from jaxrec.config.load import (
    apply_overrides,
    from_dict,
    load_config,
    resolve_config,
    save_config,
    shipped_configs,
    to_dict,
    validate,
)
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
    "resolve_config",
    "save_config",
    "shipped_configs",
    "to_dict",
    "validate",
]
