"""``jaxrec gan``: train G and D over user behaviour and report what D thinks of G's users.

Unconditional mode (the seed's GAN, Goodfellow et al. 2014): the data set's users (all of a
user's interactions, every split part together) are divided, seeded, into GAN-training users and
two held-out groups: *reference* users (the real side of the realism figures and of the detector
mix) and *calibration* users (clean users whose D scores set the detector's threshold). After
every ``report_every`` epochs the report has D(real), D(fake), both losses and the realism of
``n_fake`` binarised GAN profiles; at the end GAN profiles (with the target items) and
random-attack profiles are sampled, compared with the reference users, and D is tested as a
detector of each.

Conditional mode is CFGAN (Chae et al., CIKM 2018) as a recommender
(:mod:`jaxrec.adversarial.cfgan`): trained on the split's training part, tested with the shared
evaluator.

Training runs on the shared engine (:func:`jaxrec.adversarial.gan_training.fit_gan`: one fit
loop, one batching, one checkpointer). Outputs under ``<output_dir>/<name>/`` (the one run
writer, :func:`jaxrec.experiment.output.write_run`): ``config.yaml``, ``metrics.json``,
``history.jsonl``, ``samples.npz`` (unconditional: ``gan_profiles``, ``gan_scores``,
``random_profiles``, ``d_gan``, ``d_random``, ``d_reference`` and the user groups) and
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

from jaxrec.adversarial import detector, realism
from jaxrec.attacks import profiles
from jaxrec.adversarial.gan_training import (
    GANFit,
    GANSpec,
    GANState,
    adam,
    create_gan_state,
    d_prob,
    fit_gan,
    gan_data,
    gan_loss_eval,
    generate,
    user_matrix,
)
from jaxrec.config import Config, validate
from jaxrec.data import concat
from jaxrec.data.interactions import Split
from jaxrec.errors import JaxrecError, config_key
from jaxrec.evaluate import check_ks, evaluate, split_ranking
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import check_writable, write_run, written
from jaxrec.experiment.checkpoints import checkpointer_for
from jaxrec.models.gan import CFGAN, cfgan_variables
from jaxrec.train.engine import init_tracker
from jaxrec.train.parallel import mesh_from_config
from jaxrec.train.state import member, stack

_REPORT_KEY, _FINAL_GAN, _FINAL_RANDOM = 101, 102, 103  # fold_in tags of the evaluation keys


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


def spec_from_config(g, n_items: int) -> GANSpec:
    """:class:`GANSpec` from the ``gan`` section; a bad value names its ``gan.*`` key."""
    try:
        return GANSpec(
            n_items=n_items, noise_dim=g.noise_dim, g_hidden=tuple(g.g_hidden), d_hidden=tuple(g.d_hidden),
            dropout=g.dropout, conditional=g.conditional, non_saturating=g.non_saturating,
            d_steps=g.d_steps, pm=g.pm, pm_ratio=g.pm_ratio, zr=g.zr, zr_ratio=g.zr_ratio,
            zr_alpha=g.zr_alpha,
        )
    except JaxrecError as e:
        raise JaxrecError(f"gan.{e}") from None


def state_from_config(g, spec: GANSpec) -> GANState:
    """A fresh :class:`GANState` seeded by ``gan.seed`` with Adam(``g_lr`` / ``d_lr``, ``beta1``)."""
    return create_gan_state(spec, jax.random.key(g.seed), adam(g.g_lr, g.beta1), adam(g.d_lr, g.beta1))


def train_gan(cfg: Config, spec: GANSpec, real: np.ndarray, hook, resume: bool) -> GANFit:
    """Train the GAN of ``cfg`` on the ``real`` user matrix through the shared engine, with
    checkpoints under ``<output_dir>/<name>/checkpoints`` (every ``checkpoint.every`` epochs and
    at the end) and, with ``resume``, from the latest of them."""
    g = cfg.gan
    state = state_from_config(g, spec)
    data = gan_data(real)
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
            tree, start = ckpt.resume({"state": stacked, "tracker": init_tracker(stacked.g.params, 1, False)})
            state, tracker = member(tree["state"], 0), tree["tracker"]
        fit = fit_gan(spec, state, data, max(g.epochs - start, 0), g.batch_size, hook, mesh=mesh,
                      start_epoch=start, tracker=tracker, save=ckpt.maybe_save)
        last = fit.history[-1]["epoch"] if fit.history else start
        if last not in ckpt.epochs():
            ckpt.save(last, {"state": stack([fit.state]), "tracker": fit.tracker})
    finally:
        ckpt.close()
    return fit


def suspicion(spec, d_params, x) -> np.ndarray:
    return 1.0 - np.asarray(d_prob(spec, d_params, jnp.asarray(x)))


def run_gan(
    cfg: Config, progress: bool = True, write: bool = True, split=None, console=None, resume: bool = False,
    overwrite: bool = False,
) -> GANRunResult:
    """Train the GAN of ``cfg.gan`` on ``cfg.data`` and report (see the module docstring)."""
    validate(cfg)  # every value in its range, before anything loads or trains
    g = cfg.gan
    split = load_split(cfg.data) if split is None else split
    if g.conditional:
        if write:
            check_writable(cfg, "gan", overwrite, resume)
        return _run_cfgan(cfg, split, progress, write, console, resume)
    full = concat([split.train, split.valid, split.test], source=split.train.source)
    matrix = user_matrix(full)
    lengths_all = matrix.sum(1)
    groups = user_groups(np.flatnonzero(lengths_all > 0), g.holdout, g.seed)
    train_m, ref_m, cal_m = (matrix[groups[k]] for k in ("train", "reference", "calibration"))
    train_lengths = train_m.sum(1)
    spec = spec_from_config(g, split.n_items)
    key = jax.random.key(g.seed)
    gen = lambda params: functools.partial(generate, spec, params)  # noqa: E731
    targets = tuple(g.target_items)
    with config_key("gan.target_items"):
        profiles._targets_array(targets, split.n_items)  # validate before training

    def report(state: GANState, record: dict) -> None:
        k = jax.random.fold_in(key, _REPORT_KEY)
        fakes, scores = profiles.gan_profiles(gen(state.g.params), k, g.n_fake, train_lengths, (), g.profile_length)
        ev = gan_loss_eval(spec, state, k, jnp.asarray(ref_m))
        record.update({f"eval/{n}": float(v) for n, v in ev.items()})
        record["eval/d_fake_binarised"] = float(jnp.mean(d_prob(spec, state.d.params, fakes)))
        record.update({f"realism/{n}": v for n, v in realism.realism_report(np.asarray(fakes), ref_m).items()})

    def hook(epoch, state, record):
        if (g.report_every and epoch % g.report_every == 0) or epoch == g.epochs:
            report(state, record)
        if progress and console is not None:
            console.print(_epoch_line(record))

    if write:  # after the settings' checks (a mistake is named first), before any training
        check_writable(cfg, "gan", overwrite, resume)
    fit = train_gan(cfg, spec, train_m, hook, resume)
    state = fit.state

    # final samples: GAN and random-attack profiles, as injected
    gan_p, gan_s = profiles.gan_profiles(
        gen(state.g.params), jax.random.fold_in(key, _FINAL_GAN), g.n_fake, train_lengths, targets, g.profile_length
    )
    rnd_p = profiles.random_profiles(
        jax.random.fold_in(key, _FINAL_RANDOM), g.n_fake, split.n_items, train_lengths, targets, g.profile_length
    )
    parts = [np.asarray(gan_p), np.asarray(rnd_p), ref_m, cal_m, np.asarray(gan_s)]
    scores = suspicion(spec, state.d.params, np.concatenate(parts))  # one D pass
    s_gan, s_rnd, s_ref, s_cal, s_raw = np.split(scores, np.cumsum([len(p) for p in parts])[:-1])
    metrics = {
        "d_real_reference": float(np.mean(1 - s_ref)),
        "d_real_calibration": float(np.mean(1 - s_cal)),
        "d_gan_raw": float(np.mean(1 - s_raw)),
        "d_gan_profiles": float(np.mean(1 - s_gan)),
        "d_random_profiles": float(np.mean(1 - s_rnd)),
        **({f"final/{k}": v for k, v in fit.history[-1].items() if k != "epoch"} if fit.history else {}),
        "realism_gan": realism.realism_report(np.asarray(gan_p), ref_m),
        "realism_random": realism.realism_report(np.asarray(rnd_p), ref_m),
        "realism_real": realism.realism_report(cal_m, ref_m),  # real users' own figures: the target
        "detector_gan": detector.detection_report(s_gan, s_ref, s_cal, g.fpr),
        "detector_random": detector.detection_report(s_rnd, s_ref, s_cal, g.fpr),
        "n_train_users": int(train_m.shape[0]),
        "n_reference_users": int(ref_m.shape[0]),
        "n_calibration_users": int(cal_m.shape[0]),
        "n_fake": g.n_fake,
        "fpr_target": g.fpr,
        "epochs": g.epochs,
    }
    samples = {
        "gan_profiles": np.asarray(gan_p, np.uint8),
        "gan_scores": np.asarray(gan_s, np.float32),
        "random_profiles": np.asarray(rnd_p, np.uint8),
        "d_gan": 1 - s_gan,
        "d_random": 1 - s_rnd,
        "d_reference": 1 - s_ref,
        "d_calibration": 1 - s_cal,
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
            console.print(_epoch_line(record))

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


def _epoch_line(r: dict) -> str:
    parts = [f"epoch {r['epoch']}", f"D(real) {r['d_real']:.3f}", f"D(fake) {r['d_fake']:.3f}",
             f"d_loss {r['d_loss']:.4f}", f"g_loss {r['g_loss']:.4f}"]
    if "realism/popularity_jsd" in r:
        parts += [f"JSD {r['realism/popularity_jsd']:.3f}", f"nn-cos {r['realism/nn_cosine']:.3f}"]
    if "valid/recall@20" in r:
        parts.append(f"valid recall@20 {r['valid/recall@20']:.4f}")
    return " | ".join(parts)


def results_tables(result: GANRunResult, title: str) -> list:
    """rich Tables: D's scores, realism (GAN vs random profiles), detector; or CFGAN's ranking."""
    from rich.table import Table

    m = result.metrics
    if result.spec.conditional:
        from jaxrec.experiment.training import results_table

        d = Table(title=f"{title}: D on G's users (last epoch, training batches)")
        for c in ("D(real)", "D(fake)", "d_loss", "g_loss"):
            d.add_column(c, justify="right")
        d.add_row(*(f"{m[k]:.4f}" for k in ("d_real", "d_fake", "d_loss", "g_loss")))
        return [results_table({k: v for k, v in m.items() if "@" in k}, title=f"{title}: test"), d]
    d = Table(title=f"{title}: D's probability of 'real' (mean)")
    d.add_column("users")
    d.add_column("D(x)", justify="right")
    for name, key in (("held-out real (reference)", "d_real_reference"), ("held-out real (calibration)", "d_real_calibration"),
                      ("G(z), raw [0,1]", "d_gan_raw"), ("GAN profiles (binarised)", "d_gan_profiles"),
                      ("random-attack profiles", "d_random_profiles")):
        d.add_row(name, f"{m[key]:.4f}")
    r = Table(title=f"{title}: realism vs {m['n_reference_users']} held-out real users")
    r.add_column("figure")
    r.add_column("GAN", justify="right")
    r.add_column("random", justify="right")
    r.add_column("real (calibration)", justify="right")
    for k in ("popularity_jsd", "length_ks", "length_mean_diff", "nn_cosine"):
        r.add_row(k, *(f"{m[side][k]:.4f}" for side in ("realism_gan", "realism_random", "realism_real")))
    det = Table(title=f"{title}: D as a detector (threshold: {m['fpr_target']:.0%} FPR on calibration users)")
    det.add_column("figure")
    det.add_column("GAN fakes", justify="right")
    det.add_column("random fakes", justify="right")
    for k in ("auc", "precision", "recall", "fpr"):
        det.add_row(k, f"{m['detector_gan'][k]:.4f}", f"{m['detector_random'][k]:.4f}")
    return [d, r, det]
