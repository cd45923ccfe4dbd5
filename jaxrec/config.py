"""Experiment configuration: YAML -> typed, frozen dataclasses.

Unknown keys and values of the wrong type are errors that name the key (and the file).
Command-line overrides use dotted paths, ``--set train.epochs=50 eval.ks=[10,20]``; the value is
parsed as YAML. A small hand-written loader rather than a config library: it gives exactly these
messages, and the dataclasses stay plain (importable, picklable, hashable for ``jit``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from jaxrec.errors import JaxrecError


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, how it is cleaned and split.

    ``dataset`` is a registered name (``ml-100k``, ``ml-1m``, ..., ``gowalla``) or a file path
    (CSV/TSV/Parquet/MovieLens/LightGCN directory); ``test_path``/``valid_path`` give a
    predefined split of such files (``split: predefined``).
    """

    dataset: str = "ml-100k"
    format: str = "auto"
    user_col: str = "user_id"  #: column names for CSV/TSV/Parquet files
    item_col: str = "item_id"
    rating_col: Optional[str] = None
    time_col: Optional[str] = None
    delimiter: Optional[str] = None  #: None: from the file extension
    test_path: Optional[str] = None
    valid_path: Optional[str] = None
    implicit_threshold: Optional[float] = None  #: None: every rating is a positive
    deduplicate: bool = True
    user_core: int = 0  #: k-core filter (0: off)
    item_core: int = 0
    split: str = "random"  #: random | temporal | leave_one_out | predefined
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 2020


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The recommender and its hyper-parameters (fields unused by a model are ignored by it)."""

    name: str = "mf"
    dim: int = 64
    init: str = "xavier_normal"  #: xavier_normal | xavier_uniform | normal
    init_std: float = 0.1  #: for init: normal
    layers: int = 2  #: LightGCN / NGCF propagation layers
    mlp_layers: tuple[int, ...] = (128, 64)  #: NeuMF MLP tower
    dropout: float = 0.1  #: NeuMF (MLP) / NGCF (message dropout)
    dtype: str = "float32"  #: compute dtype: float32 | bfloat16
    propagation: str = "auto"  #: LightGCN / NGCF kernel: auto | dense | segment_sum | segment_sum_vjp | bcoo | bcsr | bcsr_vjp


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 2048
    lr: float = 1e-3
    loss: str = "bpr"  #: bpr | bce
    l2: float = 0.0  #: weight of the L2 term on the batch's layer-0 embeddings
    n_negatives: int = 1
    negative_sampling: str = "uniform"  #: uniform | popularity
    popularity_alpha: float = 0.75
    seed: int = 0
    init_from: Optional[str] = None  #: warm start: params of the latest checkpoint in this directory
    eval_every: int = 0  #: validate every N epochs (0: never)
    patience: Optional[int] = None  #: early stopping, in evaluations without improvement
    monitor: str = "recall@20"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] = (10, 20, 50)
    chunk: Optional[int] = None  #: users per ranking chunk (None: automatic)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """orbax checkpoints of the train state (see :mod:`jaxrec.train.checkpoint`)."""

    every: int = 0  #: save every N epochs and at the end (0: no checkpoints)
    keep: int = 3  #: keep the last K checkpoints
    dir: Optional[str] = None  #: None: <output_dir>/<name>/checkpoints


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """Device mesh for the update steps (see :mod:`jaxrec.train.parallel`); 1 x 1 = no mesh."""

    data: int = 1  #: devices on the 'data' axis, batches split over them (0: all devices / model)
    model: int = 1  #: devices on the 'model' axis, embedding rows split over them
    member: int = 1  #: devices on the 'member' axis, a sweep's members split over them


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """G/D over user vectors (Goodfellow et al. 2014) and CFGAN (Chae et al. 2018); ``jaxrec gan``.

    See :mod:`jaxrec.adversarial.gan_training` for the losses and masks.
    """

    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    noise_dim: int = 128  #: 0 allowed with conditional (CFGAN without noise)
    dropout: float = 0.3  #: in D
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5  #: Adam beta1 of both optimisers
    d_steps: int = 1  #: D steps per G step
    non_saturating: bool = False  #: G minimises -log D(G(z)) instead of log(1 - D(G(z)))
    conditional: bool = False  #: CFGAN: condition on the user's training vector
    zr: bool = True  #: CFGAN zero reconstruction
    zr_ratio: float = 0.7
    zr_alpha: float = 0.1
    pm: bool = True  #: CFGAN partial masking
    pm_ratio: float = 0.7
    epochs: int = 100
    batch_size: int = 128
    holdout: float = 0.2  #: share of users kept out of GAN training (realism, detector)
    n_fake: int = 50  #: fake users sampled at the end
    profile_length: str = "empirical"  #: empirical | mean (of the real profile lengths)
    target_items: tuple[int, ...] = ()  #: item indices forced into every fake profile
    fpr: float = 0.05  #: detector threshold: this false-positive rate on held-out clean users
    report_every: int = 1  #: realism / validation figures every N epochs (0: only at the end)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AdvConfig:
    """Adversarial training (see :mod:`jaxrec.adversarial.apr`): APR, He et al., SIGIR 2018."""

    method: str = "none"  #: none | apr
    eps: float = 0.5  #: perturbation strength (per-row L2 norm for fgm)
    reg: float = 1.0  #: lambda, the weight of the adversarial term
    relative: bool = False  #: eps x each table's mean row norm
    start_epoch: int = 0  #: the adversarial term is off before this epoch (plain pretraining)
    perturb: str = "fgm"  #: fgm (APR) | fgsm


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    """``jaxrec robustness`` (see :mod:`jaxrec.experiment.robustness`): which victims, which
    perturbations of their parameters and of their training data, at which strengths."""

    victims: tuple[str, ...] = ()  #: victim config files (relative to this file); empty: this config
    seeds: int = 1  #: training seeds per victim (train.seed, +1, ...; members of one program)
    methods: tuple[str, ...] = ("random", "fgm", "pgd")  #: random | gaussian | fgm | fgsm | pgd
    eps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)  #: strengths (per-row L2 norm; fgsm: L-inf)
    relative: bool = True  #: eps x each table's mean row norm (compares models)
    noise_seeds: int = 1  #: noise draws / adversary negatives per trained model (vmapped)
    strength_batch: int = 0  #: strengths vmapped together (0: auto, all unless chunks get narrow)
    pgd_steps: int = 10
    pgd_step_size: Optional[float] = None  #: per step, as a fraction of eps (None: 2.5 / pgd_steps)
    pgd_random_start: bool = False
    data_kinds: tuple[str, ...] = ()  #: drop | add: retrain every victim on noisy training data
    data_rates: tuple[float, ...] = (0.05, 0.1, 0.2)  #: share of the training interactions
    data_seeds: int = 2  #: noisy data sets per (kind, rate)
    worst_users: int = 10  #: rows of the worst-users table
    plot_metric: str = "ndcg@20"  #: the metric plotted against eps


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """``jaxrec attack`` (see :mod:`jaxrec.experiment.attack`): fake users injected into the
    training data, every victim retrained on every (attack, size, seed, defense) as members."""

    victims: tuple[str, ...] = ()  #: victim config files (relative to this file); empty: this config
    kinds: tuple[str, ...] = ("random", "average", "bandwagon", "gan")
    sizes: tuple[float, ...] = (0.01, 0.03, 0.05)  #: fake users: a share of the real users (< 1) or a count (>= 1)
    seeds: int = 2  #: per size: profile draw and victim training seed (train.seed + s)
    filler: int = 0  #: items per profile besides the targets (0: the mean real profile length)
    selected: int = 10  #: bandwagon: the most popular items rated at the maximum
    targets: tuple[str, ...] = ()  #: raw item ids (as in the data file); empty: drawn
    n_targets: int = 5  #: drawn targets, attacked jointly
    target_pool: str = "unpopular"  #: unpopular | popular | all (items with >= 1 training positive)
    intent: str = "push"  #: push (targets at the maximum rating) | nuke (at the minimum)
    threshold: Optional[float] = 4.0  #: ratings >= this become positives after injection (None: all)
    detectors: tuple[str, ...] = ("d", "pca", "rdma", "degsim")  #: defenses by filtering (d: the GAN's D)
    trusted: float = 0.1  #: share of real users trusted (held out of the GAN; set detector thresholds)
    fpr: float = 0.05  #: detector threshold: this false-positive rate on the trusted users
    pca_components: int = 3
    degsim_k: int = 25
    seed: int = 0  #: targets, trusted users


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "run"
    output_dir: str = "runs"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    gan: GANConfig = GANConfig()
    adv: AdvConfig = AdvConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    attack: AttackConfig = AttackConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    parallel: ParallelConfig = ParallelConfig()


# ------------------------------------------------------------------------------------------------
def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, where: str):
    """Check/convert one YAML value to the annotated type ``tp``; errors name ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise JaxrecError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise JaxrecError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JaxrecError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # YAML reads 1e-3 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise JaxrecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise JaxrecError(f"{where}: expected a string, got {value!r}")
        return value
    raise JaxrecError(f"{where}: unsupported config type {_type_name(tp)}")


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys and bad types raise ``JaxrecError``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            prefix = f"{where}." if where else ""
            raise JaxrecError(
                f"unknown config key {prefix}{key!s} (known: {', '.join(sorted(names))})"
            )
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """A plain, YAML-ready dict (tuples become lists)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` overrides (value parsed as YAML) to a nested dict, returning a new dict."""
    values = yaml.safe_load(yaml.safe_dump(values)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise JaxrecError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=50")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise JaxrecError(f"--set {item!r}: cannot parse the value: {e}") from None
        node = values
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise JaxrecError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return values


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``overrides``."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise JaxrecError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise JaxrecError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(values, dict):
            raise JaxrecError(f"{path}: the top level must be a mapping of sections")
    values = apply_overrides(values, list(overrides))
    try:
        return from_dict(Config, values)
    except JaxrecError as e:
        raise JaxrecError(f"{path}: {e}" if path is not None else str(e)) from None


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
