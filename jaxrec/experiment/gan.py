"""``jaxrec gan``: train G and D over user behaviour and report what D thinks of G's users.

Unconditional mode (the seed's GAN, Goodfellow et al. 2014; the switches of ``docs/gan.md``): the
data set's users (all of a user's interactions, every split part together, with their ratings
when the data has them) are divided, seeded, into GAN-training users and two held-out groups:
*reference* users (the real side of every final figure) and *calibration* users (model selection
with ``gan.select: realism``, and the threshold of D as a detector). After every
``report_every`` epochs the history has D(real), D(fake), both losses and the realism of
``n_fake`` GAN profiles against the reference users (reported, never used to select). At the end
the kept G and D (the selected epoch's, else the last) write GAN profiles (with the target
items), the random / average / bandwagon attacks get profiles of the same lengths, and every
kind is compared with the reference users (:mod:`jaxrec.experiment.gan_fakes`: realism, D, a
fresh detector).

Conditional mode is CFGAN (Chae et al., CIKM 2018) as a recommender
(:mod:`jaxrec.adversarial.cfgan`): trained on the split's training part, tested with the shared
evaluator.

Training runs on the shared engine (:func:`jaxrec.adversarial.gan_training.fit_gan`: one fit
loop, one batching, one checkpointer). Outputs under ``<output_dir>/<name>/`` (the one run
writer, :func:`jaxrec.experiment.output.write_run`): ``config.yaml``, ``metrics.json``,
``history.jsonl``, ``samples.npz`` (unconditional: ``<kind>_profiles`` as injected -- ratings when
the data has them --, ``gan_scores``, D's probabilities ``d_<kind>``, ``d_reference``,
``d_calibration`` and the user groups) and
``checkpoints/<epoch>/`` (every ``checkpoint.every`` epochs and always at the end: G's and D's
params, optimiser states, steps and keys; ``jaxrec gan --resume`` continues bit-exactly).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.adversarial import realism
from jaxrec.adversarial.gan_training import (
    GANFit,
    GANSpec,
    GANState,
    adam,
    create_gan_state,
    d_prob,
    d_view,
    fit_gan,
    gan_data,
    gan_loss_eval,
    kept,
    rating_levels,
    realism_valid,
    sample,
    user_matrix,
)
from jaxrec.attacks import profiles, shilling
from jaxrec.config import Config, validate
from jaxrec.data import concat
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import check_ks, evaluate, split_ranking
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.experiment.data import load_split
from jaxrec.experiment.gan_fakes import classic_fakes, compare_fakes, gan_fakes
from jaxrec.experiment.gan_report import epoch_line
from jaxrec.experiment.output import check_writable, write_run, written
from jaxrec.models.gan import CFGAN, cfgan_variables
from jaxrec.train.engine import init_tracker
from jaxrec.train.parallel import mesh_from_config
from jaxrec.train.state import member, stack

_REPORT_KEY, _FINAL_GAN, _FINAL_RANDOM, _SELECT = 101, 102, 103, 104  # fold_in tags of the evaluation keys
SELECTIONS = {
    "none": "none: the last epoch",
    "realism": "realism gap vs the calibration users",
    "detector": "fresh-detector AUC vs the calibration users",
}


@dataclasses.dataclass
class GANRunResult:
    """What :func:`run_gan` produced: final figures, per-epoch history, final state, output dir."""

    metrics: dict
    history: list[dict]
    state: GANState
    spec: GANSpec
    run_dir: Path | None
    samples: dict


def user_groups(n_users_with_data: np.ndarray, holdout: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded partition of user ids into ``train``, ``reference`` and ``calibration`` groups
    (``holdout`` of the users held out, split in halves)."""
    if not 0.0 < holdout < 1.0:
        raise JaxrecError(f"gan.holdout must be in (0, 1), got {holdout}")
    users = np.random.default_rng(seed).permutation(np.asarray(n_users_with_data))
    n_out = int(round(holdout * users.size))
    if n_out < 2 or users.size - n_out < 1:
        raise JaxrecError(
            f"gan.holdout: {holdout} of {users.size} users leaves no reference/calibration or training users"
        )
    half = n_out // 2
    return {
        "train": np.sort(users[n_out:]),
        "reference": np.sort(users[:half]),
        "calibration": np.sort(users[half:n_out]),
    }


def spec_from_config(g, n_items: int, levels: int = 0) -> GANSpec:
    """:class:`GANSpec` from the ``gan`` section (``levels``: the data's rating levels ``K``, used
    when ``gan.rated``); a bad value names its ``gan.*`` key."""
    if g.rated and not levels:
        raise JaxrecError("gan.rated: true needs the data's rating levels (integer ratings 1..K)")
    try:
        return GANSpec(
            n_items=n_items,
            noise_dim=g.noise_dim,
            g_hidden=tuple(g.g_hidden),
            d_hidden=tuple(g.d_hidden),
            dropout=g.dropout,
            conditional=g.conditional,
            non_saturating=g.non_saturating,
            d_steps=g.d_steps,
            pm=g.pm,
            pm_ratio=g.pm_ratio,
            zr=g.zr,
            zr_ratio=g.zr_ratio,
            zr_alpha=g.zr_alpha,
            loss=g.loss,
            gp_weight=g.gp_weight,
            label_smoothing=g.label_smoothing,
            instance_noise=g.instance_noise,
            feature_matching=g.feature_matching,
            minibatch_std=g.minibatch_std,
            relax=g.relax,
            tau=g.tau,
            temperature=g.temperature,
            rating_levels=levels if g.rated else 0,
            rating_head=g.rating_head,
            length_input=g.length_input,
        )
    except JaxrecError as e:
        raise JaxrecError(f"gan.{e}") from None


def state_from_config(g, spec: GANSpec) -> GANState:
    """A fresh :class:`GANState` seeded by ``gan.seed`` with Adam(``g_lr`` / ``d_lr``, ``beta1``)."""
    return create_gan_state(spec, jax.random.key(g.seed), adam(g.g_lr, g.beta1), adam(g.d_lr, g.beta1))


def train_gan(cfg: Config, spec: GANSpec, real: np.ndarray, hook, resume: bool, valid: dict | None = None) -> GANFit:
    """Train the GAN of ``cfg`` on the ``real`` user matrix through the shared engine, with
    checkpoints under ``<output_dir>/<name>/checkpoints`` (every ``checkpoint.every`` epochs and
    at the end) and, with ``resume``, from the latest of them. ``valid``
    (:func:`~jaxrec.adversarial.gan_training.realism_valid`) selects the most realistic epoch,
    validated every ``gan.report_every`` epochs (and the last)."""
    g = cfg.gan
    state = state_from_config(g, spec)
    data = gan_data(real, spec.rating_levels)
    p = cfg.parallel
    with config_key("parallel"):
        mesh = mesh_from_config(p.data, p.model, p.member)
    if mesh is not None and min(g.batch_size, data.n_users) % mesh.shape["data"]:
        raise JaxrecError(
            f"gan.batch_size={g.batch_size} (or the {data.n_users} training users when fewer) must be "
            f"divisible by the {mesh.shape['data']} devices of the 'data' mesh axis"
        )
    ckpt = checkpointer_for(cfg, resume, always=True)
    tracker, start = None, 0
    try:
        if resume:
            stacked = stack([state])
            template = init_tracker(kept(stacked), 1, valid is not None)
            tree, start = ckpt.resume({"state": stacked, "tracker": template})
            state, tracker = member(tree["state"], 0), tree["tracker"]
        fit = fit_gan(
            spec,
            state,
            data,
            max(g.epochs - start, 0),
            g.batch_size,
            hook,
            mesh=mesh,
            start_epoch=start,
            tracker=tracker,
            save=ckpt.maybe_save,
            valid=valid,
            eval_every=max(g.report_every, 1),
            select=g.select,
        )
        last = fit.history[-1]["epoch"] if fit.history else start
        if last not in ckpt.epochs():
            ckpt.save(last, {"state": stack([fit.state]), "tracker": fit.tracker})
    finally:
        ckpt.close()
    return fit


def suspicion(spec, d_params, x) -> np.ndarray:
    return 1.0 - np.asarray(d_prob(spec, d_params, jnp.asarray(x)))


def run_gan(
    cfg: Config,
    progress: bool = True,
    write: bool = True,
    split=None,
    console=None,
    resume: bool = False,
    overwrite: bool = False,
) -> GANRunResult:
    """Train the GAN of ``cfg.gan`` on ``cfg.data`` and report (see the module docstring)."""
    validate(cfg)  # every value in its range, before anything loads or trains
    g = cfg.gan
    if split is None:  # the fake-user study keeps ratings (every rating still an interaction) to rate fakes
        keep = "if_rated" if not g.conditional and cfg.data.implicit_threshold is None else False
        split = load_split(cfg.data, keep_ratings=keep)
    if g.conditional:
        if write:
            check_writable(cfg, "gan", overwrite, resume)
        return _run_cfgan(cfg, split, progress, write, console, resume)
    full = concat([split.train, split.valid, split.test], source=split.train.source)
    with config_key("gan.rated"):
        levels = rating_levels(full) if g.rated else 0
    data_levels = levels or rating_levels(full, required=False)  # rating figures when the data allows
    users = user_matrix(full, rated=data_levels > 0)  # as injected: ratings, or 0/1
    lengths_all = (users > 0).sum(1)
    groups = user_groups(np.flatnonzero(lengths_all > 0), g.holdout, g.seed)
    real = {k: users[v] for k, v in groups.items()}
    train_m, ref_m, cal_m = (d_view(real[k], levels) for k in ("train", "reference", "calibration"))
    train_lengths = lengths_all[groups["train"]]
    if min(len(ref_m), len(cal_m), g.n_fake) < g.fresh_folds:
        raise JaxrecError(
            f"gan.fresh_folds={g.fresh_folds}: the fresh detector needs as many reference and calibration "
            f"users and fake users (gan.n_fake={g.n_fake}); gan.holdout={g.holdout} leaves "
            f"{len(ref_m)} and {len(cal_m)}"
        )
    spec = spec_from_config(g, split.n_items, levels)
    key = jax.random.key(g.seed)
    gen = lambda params: functools.partial(sample, spec, params)  # noqa: E731
    targets = tuple(g.target_items)
    with config_key("gan.target_items"):
        profiles._targets_array(targets, split.n_items)  # validate before training

    def report(state: GANState, record: dict) -> None:
        k = jax.random.fold_in(key, _REPORT_KEY)
        fakes, out = profiles.gan_profiles(gen(state.g.params), k, g.n_fake, train_lengths, (), g.profile_length)
        ev = gan_loss_eval(spec, state, k, jnp.asarray(ref_m))
        record.update({f"eval/{n}": float(v) for n, v in ev.items()})
        record["eval/d_fake_binarised"] = float(jnp.mean(d_prob(spec, state.d.params, d_view(out.rate(fakes), levels))))
        record.update({f"realism/{n}": v for n, v in realism.realism_report(np.asarray(fakes), ref_m).items()})

    def hook(epoch, state, record):
        if (g.report_every and epoch % g.report_every == 0) or epoch == g.epochs:
            report(state, record)
        if progress and console is not None:
            console.print(epoch_line(record))

    valid = None
    if g.select != "none":  # model selection on the calibration users, never the reference users
        k = jax.random.fold_in(key, _SELECT)
        valid = realism_valid(
            cal_m,
            profiles.sample_lengths(k, train_lengths, g.n_fake, g.profile_length),
            k,
            levels,
            g.fresh_folds if g.select == "detector" else 0,
            g.seed,
        )
    if write:  # after the settings' checks (a mistake is named first), before any training
        check_writable(cfg, "gan", overwrite, resume)
    fit = train_gan(cfg, spec, train_m, hook, resume, valid)
    state = fit.selected

    # final samples: GAN profiles and the classic attacks' (as injected: rated when the data is)
    gan_p, out = profiles.gan_profiles(
        gen(state.g.params), jax.random.fold_in(key, _FINAL_GAN), g.n_fake, train_lengths, targets, g.profile_length
    )
    stats = shilling.rating_stats(full.select(np.isin(full.users, groups["train"]))) if data_levels else None
    fakes = {
        "gan": gan_fakes(
            np.asarray(gan_p), None if out.ratings is None else np.asarray(out.ratings), stats, targets, g.seed
        )
    }
    filler = (np.asarray(gan_p) > 0).sum(1) - len(targets)  # the GAN's lengths, for every kind
    fakes.update(classic_fakes(stats, jax.random.fold_in(key, _FINAL_RANDOM), filler, split.n_items, targets, g.seed))
    d_input = {
        **{k: d_view(np.asarray(v), levels) for k, v in fakes.items()},
        "reference": ref_m,
        "calibration": cal_m,
        "raw": np.asarray(out.prob),
    }
    cuts = np.cumsum([len(v) for v in d_input.values()])[:-1]
    probs = np.asarray(d_prob(spec, state.d.params, jnp.asarray(np.concatenate(list(d_input.values())))))  # one D pass
    d_real = dict(zip(d_input, np.split(probs, cuts)))
    metrics = {
        **compare_fakes(
            fakes, real["reference"], real["calibration"], d_real, data_levels, g.fpr, g.fresh_folds, g.seed
        ),
        "d_gan_raw": float(np.mean(d_real["raw"])),
        **({f"final/{k}": v for k, v in fit.history[-1].items() if k != "epoch"} if fit.history else {}),
        "selection": {"criterion": SELECTIONS[g.select], "epoch": int(fit.selected_epoch)},
        "n_train_users": int(train_m.shape[0]),
        "n_reference_users": int(ref_m.shape[0]),
        "n_calibration_users": int(cal_m.shape[0]),
        "n_fake": g.n_fake,
        "fpr_target": g.fpr,
        "epochs": g.epochs,
    }
    samples = {
        **{f"{k}_profiles": np.asarray(v, np.float32 if data_levels else np.uint8) for k, v in fakes.items()},
        "gan_scores": np.asarray(out.scores, np.float32),
        **{f"d_{k}": v for k, v in d_real.items() if k != "raw"},
        "target_items": np.asarray(targets, np.int32),
        **{f"users_{k}": v.astype(np.int32) for k, v in groups.items()},
    }
    run_dir = written(cfg, write_run, cfg, metrics, fit.history, samples, "gan") if write else None
    return GANRunResult(metrics, fit.history, state, spec, run_dir, samples)


@dataclasses.dataclass
class CFGANResult:
    """A trained CFGAN: the GAN fit, the Recommender module and its variables, test metrics."""

    fit: GANFit
    model: CFGAN
    variables: dict
    metrics: dict
    split: Split


def cfgan_model(cfg: Config, split: Split) -> CFGAN:
    """The :class:`CFGAN` Recommender for ``cfg.gan`` over ``split``'s id space."""
    return CFGAN(split.n_users, split.n_items, tuple(cfg.gan.g_hidden), cfg.gan.noise_dim)


def train_cfgan(
    cfg: Config, split: Split, on_epoch_end=None, validate: bool = True, resume: bool = False
) -> CFGANResult:
    """Train CFGAN (Chae et al., CIKM 2018) on ``split.train`` for ``gan.epochs`` and test the
    final generator with the shared full-ranking evaluator (training items masked, validation
    items too when scoring test, as for every model).

    Every ``gan.report_every`` epochs (when ``validate`` and the split has a validation part) the
    epoch record gains ``valid/recall@K`` ...; nothing is selected on them (comparisons report the
    final parameters). ``on_epoch_end(epoch, state, record)`` is called after that.
    """
    if not cfg.gan.conditional:
        raise JaxrecError("gan.conditional: CFGAN as a recommender needs gan.conditional: true")
    with config_key("eval.ks"):
        ks = check_ks(cfg.eval.ks, split.n_items)
    spec = spec_from_config(cfg.gan, split.n_items)
    purchases = user_matrix(split.train)
    model = cfgan_model(cfg, split)
    valid = split_ranking(split, "valid", cfg.eval.chunk) if validate and split.valid is not None else None
    every = cfg.gan.report_every

    def hook(epoch, state, record):
        last = epoch == cfg.gan.epochs
        if valid is not None and ((every > 0 and epoch % every == 0) or last):
            scores = evaluate(model, cfgan_variables(state.g.params, purchases), valid, ks)
            record.update({f"valid/{k}": v for k, v in scores.items()})
        if on_epoch_end is not None:
            on_epoch_end(epoch, state, record)

    fit = train_gan(cfg, spec, purchases, hook, resume)
    variables = cfgan_variables(jax.device_get(fit.state.g.params), purchases)
    metrics = evaluate(model, variables, split_ranking(split, "test", cfg.eval.chunk), ks)
    return CFGANResult(fit, model, variables, metrics, split)


def _run_cfgan(cfg: Config, split, progress: bool, write: bool, console, resume: bool) -> GANRunResult:
    def hook(epoch, state, record):
        if progress and console is not None:
            console.print(epoch_line(record))

    res = train_cfgan(cfg, split, on_epoch_end=hook, resume=resume)
    last = res.fit.history[-1] if res.fit.history else {}
    metrics = {
        **res.metrics,
        "d_real": last.get("d_real", float("nan")),
        "d_fake": last.get("d_fake", float("nan")),
        "d_loss": last.get("d_loss", float("nan")),
        "g_loss": last.get("g_loss", float("nan")),
        "epochs": cfg.gan.epochs,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "split": dict(split.info),
    }
    spec = spec_from_config(cfg.gan, split.n_items)
    run_dir = written(cfg, write_run, cfg, metrics, res.fit.history, None, "gan") if write else None
    return GANRunResult(metrics, res.fit.history, res.fit.state, spec, run_dir, {})
