"""Sequence models in an experiment: their checks, their training data and their evaluation
settings, from the config (the sequence half of :mod:`jaxrec.experiment.training`)."""

from __future__ import annotations

import jax

from jaxrec.adversarial.substitution import NEIGHBOURS, initial_neighbours
from jaxrec.adversarial.windows import SEQUENCE_METHODS, WindowAdversary
from jaxrec.config import Config
from jaxrec.data.interactions import Split
from jaxrec.data.sequences import split_order
from jaxrec.errors import JaxrecError, config_key
from jaxrec.experiment.models import build_model
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential
from jaxrec.train.sequence import SEQUENCE_LOSSES, bucket_widths, gbce_beta, sequence_data, sequence_shape
from jaxrec.train.steps import stack_data


def check_sequence(cfg: Config) -> None:
    """A sequence model's settings, each mistake one keyed line before any work."""
    m, t = cfg.model, cfg.train
    cls = MODELS[m.name]
    if t.loss not in SEQUENCE_LOSSES:
        raise JaxrecError(
            f"train.loss: {t.loss!r} is not a sequence model's loss; choose one of {list(SEQUENCE_LOSSES)}"
        )
    if cls.objective == "cloze" and t.loss != "ce":
        raise JaxrecError(f"train.loss: {m.name} trains by Cloze masking with ce, got {t.loss!r}")
    if m.max_len < 2:
        raise JaxrecError(f"model.max_len: a history window needs at least 2 positions, got {m.max_len}")
    if m.dim % m.heads:
        raise JaxrecError(f"model.heads: {m.heads} heads do not divide model.dim={m.dim}")
    if m.attention == "cudnn":
        if jax.default_backend() != "gpu":
            raise JaxrecError(
                f"model.attention: cudnn needs a GPU, and this backend is {jax.default_backend()} (use xla)"
            )
        if m.dtype != "bfloat16" or (m.dim // m.heads) % 8:
            raise JaxrecError(
                f"model.attention: cudnn needs model.dtype: bfloat16 and a head dimension (dim / heads = "
                f"{m.dim // m.heads}) that is a multiple of 8"
            )
    if t.optimizer != "adam":
        raise JaxrecError(f"train.optimizer: {t.optimizer} updates rows of user/item tables; sequence models use adam")
    if t.l2:
        raise JaxrecError("train.l2: the batch L2 term is for embedding models; use train.weight_decay")
    a = cfg.adv
    if a.method not in SEQUENCE_METHODS:
        raise JaxrecError(f"adv.method: {a.method!r} is not a sequence model's; choose one of {list(SEQUENCE_METHODS)}")
    if a.method in ("apr", "vat") and a.perturb_at != "tables":
        raise JaxrecError(
            f"adv.perturb_at: {a.perturb_at} is for embedding models; a sequence model's perturbation acts on "
            "its input window's rows (use tables)"
        )
    if cfg.eval.protocol == "sampled" and max(cfg.eval.ks) > cfg.eval.negatives + 1:
        raise JaxrecError(
            f"eval.ks: K={max(cfg.eval.ks)} exceeds the {cfg.eval.negatives + 1} ranked items of the sampled protocol"
        )


def ranking_settings(cfg: Config, model) -> dict:
    """The keyword arguments of :func:`jaxrec.evaluate.split_ranking` for ``cfg``'s evaluation
    of ``model`` (a sequence model's query, the history mask, the protocol)."""
    seq = is_sequential(model)
    e = cfg.eval
    return {
        "max_len": model.max_len if seq else None,
        "mask_history": (not seq) if e.mask_history is None else e.mask_history,
        "protocol": e.protocol,
        "negatives": e.negatives,
        "sample_users": e.sample_users,
        "seed": e.seed,
    }


def sequence_training(cfgs: list[Config], split: Split, trains, shape: dict | None = None) -> tuple:
    """Model, inputs, data, epoch settings, steps per epoch and each member's real steps per
    epoch of sequence-model members; ``trains`` (one training set per member, in ``split``'s id
    space: poisoned sets add users, whose windows join the data) are padded to one shape
    (:func:`~jaxrec.train.sequence.sequence_shape`, or ``shape`` when given: one shape for
    several calls, so one compiled program) and stacked along a member axis."""
    base = cfgs[0]
    model, inputs = build_model(base.model, split.train)
    widths = bucket_widths(base.train.buckets, model.max_len)
    args = (split_order(split), model.max_len, base.train.batch_size, widths, base.train.windows)
    parts = [split.train] if trains is None else list(trains)
    for t in parts:
        if (t.n_users, t.n_items) != (split.n_users, split.n_items):
            raise JaxrecError(f"{t.source}: a data variant must keep the split's id space")
    with config_key("data"):
        shape = shape or (sequence_shape(parts, *args) if len(parts) > 1 else {})
        built = [sequence_data(t, *args, **shape) for t in parts]
    data = stack_data([d for d, _ in built]) if len(parts) > 1 else built[0][0]
    caps = built[0][1]
    batch = base.train.batch_size
    real_steps = [int(sum(-(-int(n) // batch) for n in d.n_real)) for d, _ in built]
    extra = {"widths": widths, "caps": caps}
    if base.adv.method != "none":
        extra["window_adversary"] = window_adversary(base)
    if base.train.loss == "gbce":
        extra["beta"] = gbce_beta(base.train.n_negatives, split.n_items, base.train.gbce_t)
    real_steps = real_steps if len(parts) > 1 else real_steps * len(cfgs)
    return model, inputs, data, extra, sum(caps) // batch, real_steps


def window_adversary(cfg: Config) -> WindowAdversary:
    """A sequence model's adversarial settings (:mod:`jaxrec.adversarial.windows`) from ``adv``."""
    a = cfg.adv
    return WindowAdversary(
        a.method,
        a.relative,
        a.perturb,
        a.substitution_ratio,
        a.mix_steps,
        a.mix_step,
        a.dirichlet_alpha,
        a.dirichlet_decay,
        a.neighbours,
        a.min_neighbours,
        a.min_cos,
        a.update_epochs,
    )


def sequence_state_hparams(cfgs: list[Config], n_items: int) -> dict:
    """``state.hparams`` entries that are training state, per member (the Dirichlet defense's
    neighbour table, empty until the first epoch builds it)."""
    a = cfgs[0].adv
    if a.method != "dirichlet":
        return {}
    return {NEIGHBOURS: [initial_neighbours(n_items, a.neighbours)] * len(cfgs)}
