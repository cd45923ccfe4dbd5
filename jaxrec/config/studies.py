"""The study sections of the configuration (``robustness``, ``attack``, ``certify``,
``optimized``): the settings of ``jaxrec robustness``, ``attack`` and ``certify``, split from
:mod:`jaxrec.config.schema` (which holds the training sections and :class:`~jaxrec.config.schema.Config`)
so that each file holds one kind of section. Same rules: ``ranged(default, rule)``, the choice
lists the library's own constants."""

from __future__ import annotations

import dataclasses

from jaxrec.attacks.detection import DETECTORS, RATED_DETECTORS
from jaxrec.attacks.optimized import KINDS as OPTIMIZED
from jaxrec.attacks.outer import LOSSES as OUTER_LOSSES
from jaxrec.attacks.poison import POOLS
from jaxrec.attacks.sequences import SEQUENCE_ATTACKS
from jaxrec.attacks.shilling import INTENTS
from jaxrec.attacks.shilling import KINDS as ATTACKS
from jaxrec.config.rules import Checked, above, at_least, between, one_of, ranged
from jaxrec.robustness.bagging import BASES
from jaxrec.robustness.data_noise import KINDS as DATA_NOISE
from jaxrec.robustness.perturb import METHODS as PERTURBATION_METHODS
from jaxrec.robustness.pollution import ATTACKS as POLLUTION_ATTACKS
from jaxrec.robustness.pollution import MODES as POLLUTION_MODES
from jaxrec.robustness.pollution import POSITIONS as POLLUTION_POSITIONS


@dataclasses.dataclass(frozen=True)
class RobustnessConfig(Checked):
    """``jaxrec robustness`` (see :mod:`jaxrec.experiment.studies.robustness`): which victims, which
    perturbations of their parameters and of their training data, at which strengths."""

    #: victim config files (relative to this file, else a shipped config: ml100k-mf.yaml); empty: this config
    victims: tuple[str, ...] = ()
    seeds: int = ranged(1, at_least(1))  #: training seeds per victim (train.seed, +1, ...; members of one program)
    #: random | gaussian | fgm | fgsm | pgd
    methods: tuple[str, ...] = ranged(("random", "fgm", "pgd"), one_of(*PERTURBATION_METHODS))
    #: strengths (per-row L2 norm; fgsm: L-inf)
    eps: tuple[float, ...] = ranged((0.1, 0.25, 0.5, 1.0, 2.0), at_least(0))
    relative: bool = True  #: eps x each table's mean row norm (compares models)
    noise_seeds: int = ranged(1, at_least(1))  #: noise draws / adversary negatives per trained model (vmapped)
    strength_batch: int = ranged(0, at_least(0))  #: strengths vmapped together (0: auto, all unless chunks get narrow)
    pgd_steps: int = ranged(10, at_least(1))
    pgd_step_size: float | None = ranged(None, above(0))  #: per step, as a fraction of eps (None: 2.5 / pgd_steps)
    pgd_random_start: bool = False
    #: drop | add: retrain every victim on noisy training data
    data_kinds: tuple[str, ...] = ranged((), one_of(*DATA_NOISE))
    #: share of the training interactions
    data_rates: tuple[float, ...] = ranged((0.05, 0.1, 0.2), between(0, 1, high_open=True))
    data_seeds: int = ranged(2, at_least(1))  #: noisy data sets per (kind, rate)
    worst_users: int = ranged(10, at_least(0))  #: rows of the worst-users table
    plot_metric: str = "ndcg@20"  #: the metric plotted against eps
    #: profile pollution of sequence victims' test histories (Yue et al., RecSys 2022): gradient | random
    pollution: tuple[str, ...] = ranged((), one_of(*POLLUTION_ATTACKS))
    pollution_k: int = ranged(8, at_least(1))  #: K: the sweep measures k = 0..K substituted items
    #: untargeted (lower the true next item) | targeted (raise the targets jointly)
    pollution_modes: tuple[str, ...] = ranged(("untargeted", "targeted"), one_of(*POLLUTION_MODES))
    #: once (gradient ranked once, Yue et al.'s code) | greedy (recomputed after every substitution)
    pollution_positions: str = ranged("once", one_of(*POLLUTION_POSITIONS))
    pollution_candidates: int = ranged(10, at_least(1))  #: replacements tried by a forward pass each
    pollution_min_cos: float = 0.5  #: candidates' cosine to the replaced item (Yue et al.); <= -2: off
    pollution_targets: tuple[int | str, ...] = ()  #: raw item ids; empty: drawn as the attack protocol draws
    pollution_n_targets: int = ranged(5, at_least(1))  #: drawn targets, raised jointly
    pollution_target_pool: str = ranged("unpopular", one_of(*POOLS))  #: where targets are drawn
    pollution_protocols: tuple[str, ...] = ranged(("full", "sampled"), one_of("full", "sampled"))


@dataclasses.dataclass(frozen=True)
class AttackConfig(Checked):
    """``jaxrec attack`` (see :mod:`jaxrec.experiment.studies.attack`): fake users injected into the
    training data, every victim retrained on every (attack, size, seed, defense) as members."""

    #: victim config files (relative to this file, else a shipped config: ml100k-mf.yaml); empty: this config
    victims: tuple[str, ...] = ()
    #: the heuristic attacks (random, average, bandwagon, gan) and the optimized ones (bilevel,
    #: truncated, closed: the ``optimized`` section); on sequence victims: random, popular,
    #: bandwagon fake sequences and the optimized transition kind
    kinds: tuple[str, ...] = ranged(ATTACKS, one_of(*dict.fromkeys((*ATTACKS, *OPTIMIZED, *SEQUENCE_ATTACKS))))
    #: fake users: a share of the real users (< 1) or a count (>= 1)
    sizes: tuple[float, ...] = ranged((0.01, 0.03, 0.05), above(0))
    seeds: int = ranged(2, at_least(1))  #: per size: profile draw and victim training seed (train.seed + s)
    #: items per profile besides the targets (0: the mean real profile length); sequence victims:
    #: the fakes' length (0: drawn from the real users' lengths)
    filler: int = ranged(0, at_least(0))
    selected: int = ranged(10, at_least(1))  #: bandwagon: the most popular items rated at the maximum
    targets: tuple[int | str, ...] = ()  #: raw item ids as in the data file (50 or "i3"); empty: drawn
    n_targets: int = ranged(5, at_least(1))  #: drawn targets, attacked jointly
    #: unpopular | popular | all (items with >= 1 training positive)
    target_pool: str = ranged("unpopular", one_of(*POOLS))
    #: push (targets at the maximum rating) | nuke (at the minimum)
    intent: str = ranged("push", one_of(*INTENTS))
    threshold: float | None = 4.0  #: ratings >= this become positives after injection (None: all)
    #: defenses by filtering (d: the GAN's D)
    detectors: tuple[str, ...] = ranged(RATED_DETECTORS, one_of(*DETECTORS))
    #: share of real users trusted (held out of the GAN; set detector thresholds)
    trusted: float = ranged(0.1, between(0, 1, low_open=True, high_open=True))
    #: detector threshold: this false-positive rate on the trusted users
    fpr: float = ranged(0.05, between(0, 1, low_open=True, high_open=True))
    pca_components: int = ranged(3, at_least(1))
    degsim_k: int = ranged(25, at_least(1))
    #: certified ensembles as defenses (item | model: the ``certify`` section's T, s and N'),
    #: each retrained on every poisoned training set (embedding victims' rated data only)
    certified: tuple[str, ...] = ranged((), one_of("item", "model"))
    seed: int = 0  #: targets, trusted users


@dataclasses.dataclass(frozen=True)
class CertifyConfig(Checked):
    """``jaxrec certify`` (see :mod:`jaxrec.experiment.studies.certify`): an ensemble of base
    recommenders, each trained on a subsample of the users, whose votes come with a certificate
    against any ``e`` injected fake users (PORE, Jia et al., USENIX Security 2023)."""

    #: item (item-based, non-learned) | model (this config's model and train sections, e.g. MF-BPR
    #: or SASRec) | transition (a Markov chain over the ordered histories, non-learned) | ablation
    #: (this config's sequence model smoothed by randomized ablation, certified against pollution)
    bases: tuple[str, ...] = ranged(("item", "model"), one_of(*BASES))
    sub_models: int = ranged(1000, at_least(1))  #: T, the base recommenders per base kind
    subsample: int = ranged(200, at_least(1))  #: s, users per subsample (drawn without replacement)
    votes: int = ranged(1, at_least(1))  #: N', the items each base recommends to each of its users
    top_n: int = ranged(10, at_least(1))  #: N, the ensemble's list length
    alpha: float = ranged(0.001, between(0, 1, low_open=True, high_open=True))  #: 1 - confidence
    max_fakes: int = ranged(50, at_least(0))  #: certify e = 0 .. max_fakes fake users
    #: target items (drawn, seeded, from the unpopular half) whose HR@N is bounded for every e (0: none)
    targets: int = ranged(5, at_least(0))
    chunk: int = ranged(64, at_least(1))  #: bases per compiled call (bounds memory)
    #: also certify each ensemble as if it had this many bases with the same vote frequencies
    #: (counts scaled by extrapolate / sub_models: a plug-in estimate, not a certificate; 0: off)
    extrapolate: int = ranged(0, at_least(0))
    #: directories with PORE's vote files (frequency_aggregation_1.txt, test_1.csv; relative to
    #: this file) whose curves are recomputed and drawn next to this run's
    reference: tuple[str, ...] = ()
    seed: int = 0  #: the subsamples
    #: the transition base (sequences): the last items a user's scores read, their weights' decay
    order: int = ranged(2, at_least(1))
    decay: float = ranged(0.5, between(0, 1, low_open=True))
    #: ablation (a sequence model, against pollution): m, the history items each vote's base sees
    ablation_keep: int = ranged(5, at_least(1))
    ablation_last: int = ranged(10, at_least(2))  #: n, the most recent items a vote draws from
    ablation_votes: int = ranged(1000, at_least(1))  #: T, votes per user
    max_radius: int = ranged(5, at_least(0))  #: ablation: certify r = 0 .. max_radius substituted items


@dataclasses.dataclass(frozen=True)
class OptimizedConfig(Checked):
    """The optimized attacks of ``jaxrec attack`` (see :mod:`jaxrec.attacks.optimized`): fake
    profiles learned by differentiating through a surrogate's training. ``bilevel`` trains the
    surrogate from scratch at every outer step (RevAdv); ``truncated`` keeps it and trains
    ``unroll`` epochs per step (cheaper, for large data); ``closed`` replaces the trained surrogate
    by EASE fitted in closed form (``lam``; no training run, so nothing to unroll)."""

    #: the surrogate: a config file (relative to this file, else a shipped one), optionally followed by KEY=VALUE
    #: overrides, whose model and train sections give its model, loss, batch, learning rate, L2 and
    #: epochs (its data, eval and attack sections are this config's); empty: this config
    surrogate: str = ""
    #: bilevel: the last epochs differentiated (0: all); truncated: epochs per outer step
    unroll: int = ranged(10, at_least(0))
    steps: int = ranged(30, at_least(1))  #: outer steps
    lr: float = ranged(1.0, above(0))  #: outer learning rate (SGD with momentum on row-normalised gradients)
    momentum: float = ranged(0.95, between(0, 1, high_open=True))
    k: int = ranged(50, at_least(1))  #: the K of the outer loss (target HR@K)
    loss: str = ranged("logsigmoid", one_of(*OUTER_LOSSES))  #: logsigmoid | hr | cw | ce
    kappa: float = ranged(1.0, above(0))  #: cw: the margin; hr: the sigmoid's temperature
    resample: bool = False  #: a new surrogate seed at every outer step (false: one fixed seed, as RevAdv)
    #: bilevel: surrogates from this many seeds per outer step, their hypergradients averaged
    ensemble: int = ranged(1, at_least(1))
    lam: float = ranged(20.0, above(0))  #: closed: EASE's L2 weight (the closed-form surrogate)
    candidates: int = ranged(0, at_least(0))  #: items a profile may hold: 0 all, N the N most popular (+ targets)
    users: int = ranged(0, at_least(0))  #: real users of the outer loss: 0 all, N a seeded sample
    #: the heuristic attack whose profiles (filler items and sizes) start the optimization
    init: str = ranged("bandwagon", one_of("random", "average", "bandwagon"))
    #: closed: EASE L2 weights to choose ``lam`` from on the attacker's proxies (empty: ``lam``)
    tune_lam: tuple[float, ...] = ranged((), above(0))
    #: closed: temperatures / margins to choose ``kappa`` from on the proxies (empty: ``kappa``)
    tune_kappa: tuple[float, ...] = ranged((), above(0))
    #: the attacker's proxy victims for tuning: config files and overrides as ``attack.victims``
    #: (empty: this config); trained on the training part only, judged on the real users
    proxies: tuple[str, ...] = ()
    #: added to every proxy's ``train.seed``: the attacker never trains with a victim's seed
    proxy_seed: int = ranged(1000, at_least(1))
    #: transition (sequence victims): the last items the surrogate reads, and their weights' decay
    order: int = ranged(2, at_least(1))
    decay: float = ranged(0.5, between(0, 1, low_open=True))
