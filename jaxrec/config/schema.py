"""The configuration's schema: one frozen dataclass per section, each field with its default and
the values it allows (``ranged(default, rule)``, :mod:`jaxrec.config.rules`), and the checks that
relate several fields. Every section is :class:`~jaxrec.config.rules.Checked`: built from YAML or in
Python, a bad value is one error naming ``<section>.<field>`` and the value. The choice lists are
the library's own constants, imported from the floors below, so a config allows exactly what the
library runs. The study sections (``robustness``, ``attack``, ``certify``, ``optimized``) are in
:mod:`jaxrec.config.studies`."""

from __future__ import annotations

import dataclasses
import typing

from jaxrec.adversarial import TRAINING_METHODS
from jaxrec.adversarial.apr import PERTURB_AT, PERTURBATIONS
from jaxrec.adversarial.gan_losses import LOSSES as GAN_LOSSES
from jaxrec.adversarial.gan_training import SELECTIONS
from jaxrec.adversarial.vat import LAMBDA as VAT_LAMBDA
from jaxrec.attacks.discrete import RELAXATIONS
from jaxrec.attacks.profiles import LENGTHS
from jaxrec.config.rules import CROSS, NAME, SECTIONS, Checked, above, at_least, between, key_of, one_of, ranged
from jaxrec.config.studies import AttackConfig, CertifyConfig, OptimizedConfig, RobustnessConfig
from jaxrec.data.graph import PROPAGATIONS
from jaxrec.data.sampling import NEGATIVE_SAMPLERS
from jaxrec.data.sequences import WINDOWS
from jaxrec.data.split import LOO_RULES, ORDERS, SPLITS
from jaxrec.errors import JaxrecError
from jaxrec.models import MODELS
from jaxrec.models.attention import ACTIVATIONS, IMPLEMENTATIONS, NORMS
from jaxrec.models.base import DTYPES, INITIALIZERS
from jaxrec.models.gan import RATING_HEADS
from jaxrec.train.engine import LOOPS as MEMBER_LOOPS
from jaxrec.train.losses import LOSSES
from jaxrec.train.rowwise import OPTIMIZERS
from jaxrec.train.sequence import SEQUENCE_LOSSES
from jaxrec.train.state import SCHEDULES


@dataclasses.dataclass(frozen=True)
class DataConfig(Checked):
    """Which data, how it is cleaned and split.

    ``dataset`` is a registered name (``ml-100k``, ``ml-1m``, ..., ``gowalla``) or a file path
    (CSV/TSV/Parquet/MovieLens/LightGCN directory); ``test_path``/``valid_path`` give a
    predefined split of such files (``split: predefined``).
    """

    dataset: str = "ml-100k"
    user_col: str = "user_id"  #: column names for CSV/TSV/Parquet files
    item_col: str = "item_id"
    rating_col: str | None = None
    time_col: str | None = None
    delimiter: str | None = None  #: None: from the file extension
    #: a header-less file's column names in order, e.g. [user_id, item_id, rating, timestamp]
    columns: tuple[str, ...] = ()
    test_path: str | None = None
    valid_path: str | None = None
    implicit_threshold: float | None = None  #: None: every rating is a positive
    #: drop repeated (user, item) rows; None: yes for embedding models, no for sequence models
    #: (a re-consumption is an event)
    deduplicate: bool | None = None
    user_core: int = ranged(0, at_least(0))  #: k-core filter (0: off)
    item_core: int = ranged(0, at_least(0))
    split: str = ranged("random", one_of(*SPLITS))  #: random | temporal | leave_one_out | predefined
    ratios: tuple[float, ...] = ranged((0.8, 0.1, 0.1), between(0, 1))
    seed: int = 2020
    #: the order of a user's events (leave_one_out, sequences): time (timestamps) | file (the rows'
    #: own order) | auto (file for a data set released in time order, e.g. amazon-games; else time)
    order: str = ranged("auto", one_of("auto", *ORDERS))
    #: leave_one_out's short users: recbole (2 events: train + test) | sasrec (< 3 events: train
    #: only) | auto (sasrec for amazon-games, else recbole)
    loo_rule: str = ranged("auto", one_of("auto", *LOO_RULES))


@dataclasses.dataclass(frozen=True)
class ModelConfig(Checked):
    """The recommender and its hyper-parameters (fields unused by a model are ignored by it)."""

    #: a key of :data:`jaxrec.models.MODELS`, read when checked: mf | neumf | lightgcn | ngcf | sasrec |
    #: bert4rec | hstu, or a name given to :func:`jaxrec.models.register_model`
    name: str = ranged("mf", key_of(MODELS))
    dim: int = ranged(64, at_least(1))
    #: the embedding tables' initialiser: xavier_normal | xavier_uniform | normal (was ``model.init``)
    initializer: str = ranged("xavier_normal", one_of(*INITIALIZERS))
    init_std: float = ranged(0.1, above(0))  #: for initializer: normal
    layers: int = ranged(2, at_least(0))  #: LightGCN / NGCF propagation layers
    mlp_layers: tuple[int, ...] = ranged((128, 64), at_least(1))  #: NeuMF MLP tower
    dropout: float = ranged(0.1, between(0, 1, high_open=True))  #: NeuMF (MLP) / NGCF (message dropout)
    dtype: str = ranged("float32", one_of(*DTYPES))  #: compute dtype: float32 | bfloat16
    #: LightGCN / NGCF kernel: auto | dense | segment_sum | segment_sum_vjp | bcoo | bcsr | bcsr_vjp
    propagation: str = ranged("auto", one_of("auto", *PROPAGATIONS))
    # ---- sequence models (sasrec | bert4rec | hstu; layers = blocks, dropout = hidden dropout)
    max_len: int = ranged(50, at_least(1))  #: the history window (most recent items)
    heads: int = ranged(1, at_least(1))  #: attention heads (must divide dim)
    inner: int = ranged(0, at_least(0))  #: feed-forward width (0: dim)
    attn_dropout: float | None = ranged(None, between(0, 1, high_open=True))  #: None: dropout
    activation: str = ranged("relu", one_of(*ACTIVATIONS))  #: relu (SASRec) | gelu (RecBole, BERT4Rec)
    norm: str = ranged("pre", one_of(*NORMS))  #: pre (the SASRec code) | post (RecBole)
    tied: bool = True  #: output item table = input item table (gSASRec: false)
    #: jax.nn.dot_product_attention's implementation: xla | cudnn (GPU, bfloat16, head dim % 8 == 0)
    attention: str = ranged("xla", one_of(*IMPLEMENTATIONS))
    mask_prob: float = ranged(0.2, between(0, 1, low_open=True, high_open=True))  #: BERT4Rec's Cloze share


@dataclasses.dataclass(frozen=True)
class TrainConfig(Checked):
    epochs: int = ranged(20, at_least(0))
    batch_size: int = ranged(2048, at_least(1))
    lr: float = ranged(1e-3, above(0))
    #: adam (dense) | lazy_adam | rowwise_adagrad: row-wise sparse updates of the embedding tables
    optimizer: str = ranged("adam", one_of(*OPTIMIZERS))
    #: bpr | bce (pairs); bce | ce | gbce (sequence models)
    loss: str = ranged("bpr", one_of(*dict.fromkeys((*LOSSES, *SEQUENCE_LOSSES))))
    gbce_t: float = ranged(0.75, between(0, 1))  #: gSASRec's calibration t (train.loss: gbce)
    l2: float = ranged(0.0, at_least(0))  #: weight of the L2 term on the batch's layer-0 embeddings
    n_negatives: int = ranged(1, at_least(1))
    negative_sampling: str = ranged("uniform", one_of(*NEGATIVE_SAMPLERS))  #: uniform | popularity
    popularity_alpha: float = ranged(0.75, at_least(0))
    seed: int = 0
    init_from: str | None = None  #: warm start: params of the latest checkpoint in this directory
    eval_every: int = ranged(0, at_least(0))  #: validate every N epochs (0: never)
    patience: int | None = ranged(None, at_least(1))  #: early stopping, in evaluations without improvement
    monitor: str = "recall@20"
    betas: tuple[float, ...] = ranged((0.9, 0.999), between(0, 1, high_open=True))  #: Adam's b1, b2 (lazy_adam's too)
    weight_decay: float = ranged(0.0, at_least(0))  #: decoupled (AdamW), on every parameter
    schedule: str = ranged("constant", one_of(*SCHEDULES))  #: constant | warmup_cosine (x lr)
    warmup_epochs: int = ranged(0, at_least(0))  #: warmup_cosine: linear warm-up epochs
    #: sequence models: widths of the length buckets (a batch runs at the narrowest holding it;
    #: max_len is always the last; [] = every batch padded to max_len)
    buckets: tuple[int, ...] = ranged((8, 16, 32), at_least(1))
    #: sequence models: all (every training event is a target once) | last (the most recent
    #: max_len events per user, the SASRec code)
    windows: str = ranged("all", one_of(*WINDOWS))


@dataclasses.dataclass(frozen=True)
class EvalConfig(Checked):
    ks: tuple[int, ...] = ranged((10, 20, 50), at_least(1))
    chunk: int | None = ranged(None, at_least(1))  #: users per ranking chunk (None: automatic)
    #: full (the whole catalogue) | sampled (the held-out item against ``negatives`` items drawn
    #: uniformly with replacement from outside the user's training items, the SASRec code's)
    protocol: str = ranged("full", one_of("full", "sampled"))
    negatives: int = ranged(100, at_least(1))  #: sampled protocol: drawn items per user
    sample_users: int = ranged(0, at_least(0))  #: evaluate a seeded sample of this many users (0: all)
    #: mask the user's training (and validation) items; None: yes for embedding models, no for
    #: sequence models (RecBole 1.2.1 masks no history for them)
    mask_history: bool | None = None
    seed: int = 0  #: the sampled protocol's items and the user sample


@dataclasses.dataclass(frozen=True)
class CheckpointConfig(Checked):
    """orbax checkpoints of the train state (see :mod:`jaxrec.train.checkpoint`)."""

    every: int = ranged(0, at_least(0))  #: save every N epochs and at the end (0: no checkpoints)
    keep: int = ranged(3, at_least(1))  #: keep the last K checkpoints
    dir: str | None = None  #: None: <output_dir>/<name>/checkpoints


@dataclasses.dataclass(frozen=True)
class ParallelConfig(Checked):
    """Device mesh for the update steps (see :mod:`jaxrec.train.parallel`); 1 x 1 = no mesh."""

    data: int = ranged(1, at_least(0))  #: devices on the 'data' axis, batches split over them (0: all devices / model)
    model: int = ranged(1, at_least(1))  #: devices on the 'model' axis, embedding rows split over them
    member: int = ranged(1, at_least(1))  #: devices on the 'member' axis, a sweep's members split over them
    #: how one program runs its members: vmap (batched) | map (one after the other, one program)
    #: | auto (map on a CPU when a member's state passes 256 KiB, else vmap)
    member_loop: str = ranged("auto", one_of("auto", *MEMBER_LOOPS))


@dataclasses.dataclass(frozen=True)
class GANConfig(Checked):
    """G/D over user vectors (Goodfellow et al. 2014) and CFGAN (Chae et al. 2018); ``jaxrec gan``.

    See :mod:`jaxrec.adversarial.gan_steps` for the losses, masks and stabilisers (each a switch,
    off by default) and ``docs/gan.md`` for what was measured with them.
    """

    #: the seed's: noise -> 256 -> 512 -> 1024 -> items
    g_hidden: tuple[int, ...] = ranged((256, 512, 1024), at_least(1))
    d_hidden: tuple[int, ...] = ranged((256, 512, 1024), at_least(1))  #: the seed's: items -> 256 -> 512 -> 1024 -> 1
    noise_dim: int = ranged(128, at_least(0))  #: 0 allowed with conditional (CFGAN without noise)
    dropout: float = ranged(0.3, between(0, 1, high_open=True))  #: in D
    g_lr: float = ranged(2e-4, above(0))
    d_lr: float = ranged(2e-4, above(0))
    beta1: float = ranged(0.5, between(0, 1, high_open=True))  #: Adam beta1 of both optimisers
    d_steps: int = ranged(1, at_least(1))  #: D steps per G step
    non_saturating: bool = False  #: G minimises -log D(G(z)) instead of log(1 - D(G(z)))
    conditional: bool = False  #: CFGAN: condition on the user's training vector
    zr: bool = True  #: CFGAN zero reconstruction
    zr_ratio: float = ranged(0.7, between(0, 1))
    zr_alpha: float = ranged(0.1, at_least(0))
    pm: bool = True  #: CFGAN partial masking
    pm_ratio: float = ranged(0.7, between(0, 1))
    loss: str = ranged("bce", one_of(*GAN_LOSSES))  #: bce (the seed's minimax) | hinge | wgan-gp
    gp_weight: float = ranged(10.0, at_least(0))  #: wgan-gp's gradient-penalty weight
    label_smoothing: float = ranged(0.0, between(0, 1, high_open=True))  #: one-sided: D's real target 1 - this (bce)
    instance_noise: float = ranged(0.0, at_least(0))  #: std of Gaussian noise added to D's inputs
    feature_matching: float = ranged(0.0, at_least(0))  #: weight of G's feature-matching term (D's last hidden layer)
    minibatch_std: bool = False  #: D sees the minibatch standard deviation feature
    #: D judges G's discrete top-L profiles (unconditional)
    relax: str = ranged("none", one_of(*RELAXATIONS))
    tau: float = ranged(1.0, above(0))  #: temperature of the relaxation's gradient
    temperature: float = ranged(1.0, above(0))  #: gumbel: items sampled from softmax(logits / temperature)
    length_input: bool = False  #: G reads the length L of the profile it writes (unconditional)
    rated: bool = False  #: G also writes ratings 1..K (needs integer-rated data); D judges rated users
    #: G's ratings: a rounded mean | a level drawn from per-level logits
    rating_head: str = ranged("mean", one_of(*RATING_HEADS))
    #: keep the epoch whose fakes are most realistic (realism gap) or least detectable (fresh detector) vs the
    #: calibration users
    select: str = ranged("none", one_of(*SELECTIONS))
    fresh_folds: int = ranged(5, at_least(2))  #: folds of the fresh detector (real reference users vs new fakes)
    epochs: int = ranged(100, at_least(0))
    batch_size: int = ranged(128, at_least(1))
    #: share of users kept out of GAN training (realism, detector)
    holdout: float = ranged(0.2, between(0, 1, low_open=True, high_open=True))
    n_fake: int = ranged(50, at_least(1))  #: fake users sampled at the end
    #: empirical | mean (of the real profile lengths)
    profile_length: str = ranged("empirical", one_of(*LENGTHS))
    target_items: tuple[int, ...] = ranged((), at_least(0))  #: item indices forced into every fake profile
    #: detector threshold: this false-positive rate on held-out clean users
    fpr: float = ranged(0.05, between(0, 1, low_open=True, high_open=True))
    #: realism / validation figures (and model selection) every N epochs (0: only at the end)
    report_every: int = ranged(1, at_least(0))
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AdvConfig(Checked):
    """Adversarial training (see :mod:`jaxrec.adversarial.apr`): APR, He et al., SIGIR 2018; VAT,
    Zhang et al., RecSys 2024 (:mod:`jaxrec.adversarial.vat`); on sequence models also the mix
    and Dirichlet defenses of Yue et al., RecSys 2022 (:mod:`jaxrec.adversarial.substitution`)."""

    method: str = ranged("none", one_of(*TRAINING_METHODS))  #: none | apr | vat | mix | dirichlet (sequence models)
    eps: float = ranged(0.5, at_least(0))  #: perturbation strength (per-row L2 norm for fgm)
    reg: float = ranged(1.0, at_least(0))  #: lambda, the weight of the adversarial term
    relative: bool = False  #: eps x each table's mean row norm
    start_epoch: int = ranged(0, at_least(0))  #: the adversarial term is off before this epoch (plain pretraining)
    perturb: str = ranged("fgm", one_of(*PERTURBATIONS))  #: fgm (APR) | fgsm
    #: tables (APR's code: the embedding tables) | final (VAT's code: the final representations,
    #: LightGCN's propagated embeddings; half the propagations per step)
    perturb_at: str = ranged("tables", one_of(*PERTURB_AT))
    #: VAT: the largest per-user weight (the paper's ``user_lmb``; 2 = APR's eps for an average user)
    vat_lambda: float = ranged(VAT_LAMBDA, at_least(0))
    # sequence models, Yue et al., RecSys 2022 (:mod:`jaxrec.adversarial.substitution`)
    #: mix / dirichlet: the share of a window's real positions substituted (their substitution_ratio)
    substitution_ratio: float = ranged(0.5, between(0, 1))
    mix_steps: int = ranged(3, at_least(1))  #: mix: ascent steps on the simplex (their adv_iteration)
    mix_step: float = ranged(1.0, above(0))  #: mix: the step along the row-normalised gradient (their adv_step)
    dirichlet_alpha: float = ranged(1.0, above(0))  #: dirichlet: the first-order neighbours' concentration
    dirichlet_decay: float = ranged(0.5, above(0))  #: dirichlet: second-order concentration = alpha x decay
    neighbours: int = ranged(25, at_least(1))  #: dirichlet: neighbours per order (their max_items / 2)
    min_neighbours: int = ranged(2, at_least(1))  #: dirichlet: first-order neighbours kept below min_cos
    min_cos: float = ranged(0.5, between(-1, 1))  #: dirichlet: the cosine a first-order neighbour needs
    update_epochs: int = ranged(10, at_least(1))  #: dirichlet: the neighbour table's rebuild period (epochs)


@dataclasses.dataclass(frozen=True)
class Config(Checked):
    name: str = ranged("run", NAME)
    output_dir: str = "runs"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    gan: GANConfig = GANConfig()
    adv: AdvConfig = AdvConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    attack: AttackConfig = AttackConfig()
    optimized: OptimizedConfig = OptimizedConfig()
    certify: CertifyConfig = CertifyConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    parallel: ParallelConfig = ParallelConfig()


# ------------------------------------------------------------------------------------------------
def _ratios_sum_to_one(d: DataConfig, at: str) -> None:
    if len(d.ratios) not in (2, 3) or abs(sum(d.ratios) - 1.0) > 1e-6:
        raise JaxrecError(f"{at}ratios must be 2 or 3 shares (train, [valid,] test) summing to 1, got {list(d.ratios)}")


def _epochs_train_something(t: TrainConfig, at: str) -> None:
    if t.epochs == 0 and t.init_from is None:
        raise JaxrecError(f"{at}epochs must be >= 1, got 0 (0 only evaluates a warm start: set {at}init_from)")


def _a_tower(m: ModelConfig, at: str) -> None:
    if not m.mlp_layers:
        raise JaxrecError(f"{at}mlp_layers: give one or more positive widths, got []")


CROSS.update({DataConfig: (_ratios_sum_to_one,), TrainConfig: (_epochs_train_something,), ModelConfig: (_a_tower,)})
SECTIONS.update({tp: key for key, tp in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(tp)})


#: config keys that were renamed: ``(section class, old key) -> new key``; the old key is an error
#: that names the new one
RENAMED = {(ModelConfig, "init"): "initializer"}
