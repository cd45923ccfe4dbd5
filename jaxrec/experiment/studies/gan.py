"""``jaxrec gan``: train G and D over user behaviour and report what D thinks of G's users.

Unconditional mode (the seed's GAN, Goodfellow et al. 2014; the switches of ``docs/gan.md``): the
data set's users (all of a user's interactions, every split part together, with their ratings
when the data has them) are divided, seeded, into GAN-training users and two held-out groups
(:func:`jaxrec.adversarial.fake_users.user_groups`): *reference* users (the real side of every
final figure) and *calibration* users (model selection with ``gan.select``, and the threshold of
D as a detector). After every ``report_every`` epochs the history has D(real), D(fake), both
losses and the realism of ``n_fake`` GAN profiles against the reference users (reported, never
used to select). At the end the kept G and D (the selected epoch's, else the last) write GAN
profiles (with the target items), the random / average / bandwagon attacks get profiles of the
same lengths, and every kind is compared with the reference users
(:func:`jaxrec.adversarial.fake_users.compare_fakes`: realism, D, a fresh detector).

Conditional mode is CFGAN (Chae et al., CIKM 2018) as a recommender
(:func:`jaxrec.experiment.gans.train_cfgan`): trained on the split's training part, tested with
the shared evaluator.

Training runs on the shared engine (:func:`jaxrec.experiment.gans.train_gan`: one fit loop, one
batching, one checkpointer). Outputs under ``<output_dir>/<name>/``: ``config.yaml``,
``metrics.json``, ``history.jsonl``, ``samples.npz`` (unconditional: ``<kind>_profiles`` as injected
-- ratings when the data has them --, ``gan_scores``, D's probabilities ``d_<kind>``,
``d_reference``, ``d_calibration`` and the user groups), ``results.csv`` / ``results.json`` (one row
per kind of fake user, or CFGAN's test metrics), ``report.md`` and ``checkpoints/<epoch>/`` (every
``checkpoint.every`` epochs and always at the end; ``jaxrec gan --resume`` continues bit-exactly).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax.numpy as jnp
import numpy as np

from jaxrec.adversarial import gan_training as gt
from jaxrec.adversarial import realism
from jaxrec.adversarial.fake_users import classic_fakes, compare_fakes, gan_fakes, user_groups
from jaxrec.attacks import profiles, shilling
from jaxrec.config import Config, validate
from jaxrec.data import concat
from jaxrec.errors import JaxrecError, config_key, config_section
from jaxrec.experiment.data import load_split
from jaxrec.experiment.gans import spec_from_config, train_cfgan, train_gan
from jaxrec.experiment.output import atomic_write, write_json, write_rows, write_run
from jaxrec.experiment.report import Table, markdown_report, metrics_table
from jaxrec.experiment.studies.base import StudyResult, summarise

NAME = "gan"
HELP = "train a GAN over users (fake users, or CFGAN) and report D's scores"
RESUMABLE = True
DEFAULTS = "the unconditional GAN over ml-100k users"  #: what the built-in config runs
SELECTIONS = {
    "none": "none: the last epoch",
    "realism": "realism gap vs the calibration users",
    "detector": "fresh-detector AUC vs the calibration users",
}
REALISM_ROWS = ("popularity_jsd", "length_ks", "nn_cosine", "diversity", "rating_jsd")


@dataclasses.dataclass
class Extras:
    """What ``metrics.json``, ``history.jsonl`` and ``samples.npz`` hold, the final (selected) state
    and the spec."""

    metrics: dict
    history: list[dict]
    state: gt.GANState
    spec: gt.GANSpec
    samples: dict


@dataclasses.dataclass
class Plan:
    """The data and, unconditionally, the user groups, their matrices and the settings checked
    against them."""

    split: object
    spec: gt.GANSpec | None = None
    groups: dict | None = None
    real: dict | None = None  #: ``{group: users as injected [N, n_items]}``
    levels: int = 0  #: the rated GAN's rating levels (0: unrated)
    data_levels: int = 0  #: the data's rating levels (0: none): rating figures when it has them
    train_lengths: np.ndarray | None = None


def check(cfg: Config, base_dir=".", split=None) -> Plan:
    """Every value, the data and what depends on it: the user groups, the fresh detector's folds,
    the rating levels, the target items."""
    validate(cfg)
    g = cfg.gan
    if split is None:  # the fake-user study keeps ratings (every rating still an interaction) to rate fakes
        keep = "if_rated" if not g.conditional and cfg.data.implicit_threshold is None else False
        split = load_split(cfg.data, keep_ratings=keep)
    if g.conditional:
        return Plan(split, spec_from_config(g, split.n_items))
    full = concat([split.train, split.valid, split.test], source=split.train.source)
    with config_key("gan.rated"):
        levels = gt.rating_levels(full) if g.rated else 0
    data_levels = levels or gt.rating_levels(full, required=False)
    users = full.dense(rated=data_levels > 0)  # as injected: ratings, or 0/1
    lengths = (users > 0).sum(1)
    with config_section("gan"):
        groups = user_groups(np.flatnonzero(lengths > 0), g.holdout, g.seed)
    real = {k: users[v] for k, v in groups.items()}
    n_ref, n_cal = len(groups["reference"]), len(groups["calibration"])
    if min(n_ref, n_cal, g.n_fake) < g.fresh_folds:
        raise JaxrecError(
            f"gan.fresh_folds={g.fresh_folds}: the fresh detector needs as many reference and calibration "
            f"users and fake users (gan.n_fake={g.n_fake}); gan.holdout={g.holdout} leaves {n_ref} and {n_cal}"
        )
    spec = spec_from_config(g, split.n_items, levels)
    with config_key("gan.target_items"):
        profiles._targets_array(g.target_items, split.n_items)
    return Plan(split, spec, groups, real, levels, data_levels, lengths[groups["train"]])


def describe(cfg: Config, plan: Plan) -> str:
    mode = "CFGAN (conditional)" if cfg.gan.conditional else "GAN (fake users)"
    return f"{mode} on {cfg.data.dataset}, {cfg.gan.epochs} epochs"


def epoch_line(r: dict) -> str:
    """One epoch's line: D's scores, the losses, and the realism / validation figures it has."""
    parts = [
        f"epoch {r['epoch']}",
        f"D(real) {r['d_real']:.3f}",
        f"D(fake) {r['d_fake']:.3f}",
        f"d_loss {r['d_loss']:.4f}",
        f"g_loss {r['g_loss']:.4f}",
    ]
    if "realism/popularity_jsd" in r:
        parts += [f"JSD {r['realism/popularity_jsd']:.3f}", f"nn-cos {r['realism/nn_cosine']:.3f}"]
    if "valid/realism" in r:
        parts.append(f"valid gap {-r['valid/realism']:.3f}")
    if "valid/recall@20" in r:
        parts.append(f"valid recall@20 {r['valid/recall@20']:.4f}")
    return " | ".join(parts)


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    show = progress and console is not None
    t0 = time.perf_counter()
    if cfg.gan.conditional:
        result = _cfgan(cfg, plan, (lambda e, s, r: console.print(epoch_line(r))) if show else None, resume)
    else:
        result = _fake_users(cfg, plan, console.print if show else None, resume)
    result.timing["wall_s"] = time.perf_counter() - t0
    return result


def _fake_users(cfg: Config, plan: Plan, printer, resume: bool) -> StudyResult:
    g, spec, levels = cfg.gan, plan.spec, plan.levels
    view = functools.partial(gt.d_view, levels=levels)
    train_m, ref_m, cal_m = (view(plan.real[k]) for k in ("train", "reference", "calibration"))
    gen = lambda params: functools.partial(gt.sample, spec, params)  # noqa: E731
    targets = tuple(g.target_items)

    def report(state: gt.GANState, record: dict) -> None:
        k = gt.stream_key(g.seed, "report")
        fakes, out = profiles.gan_profiles(gen(state.g.params), k, g.n_fake, plan.train_lengths, (), g.profile_length)
        ev = gt.gan_loss_eval(spec, state, k, jnp.asarray(ref_m))
        record.update({f"eval/{n}": float(v) for n, v in ev.items()})
        record["eval/d_fake_binarised"] = float(jnp.mean(gt.d_prob(spec, state.d.params, view(out.rate(fakes)))))
        record.update({f"realism/{n}": v for n, v in realism.realism_report(np.asarray(fakes), ref_m).items()})

    def hook(epoch, state, record):
        if (g.report_every and epoch % g.report_every == 0) or epoch == g.epochs:
            report(state, record)
        if printer is not None:
            printer(epoch_line(record))

    valid = None
    if g.select != "none":  # model selection on the calibration users, never the reference users
        k = gt.stream_key(g.seed, "select")
        lengths = profiles.sample_lengths(k, plan.train_lengths, g.n_fake, g.profile_length)
        folds = g.fresh_folds if g.select == "detector" else 0
        valid = gt.realism_valid(cal_m, lengths, k, levels=levels, folds=folds, seed=g.seed)
    fit = train_gan(cfg, spec, train_m, hook, resume, valid)
    state = fit.selected
    # final samples: GAN profiles and the classic attacks' (as injected: rated when the data is)
    key = gt.stream_key(g.seed, "final")
    gan_p, out = profiles.gan_profiles(
        gen(state.g.params), key, g.n_fake, plan.train_lengths, targets, g.profile_length
    )
    full = concat([plan.split.train, plan.split.valid, plan.split.test], source=plan.split.train.source)
    trained = full.select(np.isin(full.users, plan.groups["train"]))
    stats = shilling.rating_stats(trained) if plan.data_levels else None
    ratings = None if out.ratings is None else np.asarray(out.ratings)
    fakes = {"gan": gan_fakes(np.asarray(gan_p), ratings, stats, targets, g.seed)}
    filler = (np.asarray(gan_p) > 0).sum(1) - len(targets)  # the GAN's lengths, for every kind
    fakes.update(classic_fakes(stats, filler, plan.split.n_items, targets, g.seed))
    d_input = {
        **{k: view(np.asarray(v)) for k, v in fakes.items()},
        "reference": ref_m,
        "calibration": cal_m,
        "raw": np.asarray(out.prob),
    }
    cuts = np.cumsum([len(v) for v in d_input.values()])[:-1]
    probs = np.asarray(gt.d_prob(spec, state.d.params, jnp.asarray(np.concatenate(list(d_input.values())))))
    d_real = dict(zip(d_input, np.split(probs, cuts)))  # one D pass
    real = plan.real
    compared = compare_fakes(
        fakes, real["reference"], real["calibration"], d_real, plan.data_levels, g.fpr, g.fresh_folds, g.seed
    )
    metrics = {
        **compared,
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
        **{f"{k}_profiles": np.asarray(v, np.float32 if plan.data_levels else np.uint8) for k, v in fakes.items()},
        "gan_scores": np.asarray(out.scores, np.float32),
        **{f"d_{k}": v for k, v in d_real.items() if k != "raw"},
        "target_items": np.asarray(targets, np.int32),
        **{f"users_{k}": v.astype(np.int32) for k, v in plan.groups.items()},
    }
    rows = [_kind_row(metrics, kind) for kind in [*fakes, "real"]]
    summary = summarise(rows, ["kind"], [k for k in rows[0] if k not in ("kind", "failed")])
    return StudyResult(NAME, cfg, rows, summary, {}, Extras(metrics, fit.history, state, spec, samples))


def _kind_row(metrics: dict, kind: str) -> dict:
    """One kind of fake user's figures (``real``: the calibration users against the reference ones)."""
    row = {"kind": kind, **metrics[f"realism_{kind}"]}
    if kind != "real":
        row["d_mean"] = metrics[f"d_{kind}_profiles"]
        row.update({f"d_{k}": v for k, v in metrics[f"detector_{kind}"].items()})
        row["fresh_auc"] = metrics[f"fresh_{kind}"]["auc"]
    return {**row, "failed": False}


def _cfgan(cfg: Config, plan: Plan, hook, resume: bool) -> StudyResult:
    split = plan.split
    res = train_cfgan(cfg, split, on_epoch_end=hook, resume=resume)
    last = res.fit.history[-1] if res.fit.history else {}
    metrics = {
        **res.metrics,
        **{k: last.get(k, float("nan")) for k in ("d_real", "d_fake", "d_loss", "g_loss")},
        "epochs": cfg.gan.epochs,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "split": dict(split.info),
    }
    rows = [{"model": "cfgan", **res.metrics, "failed": False}]
    extras = Extras(metrics, res.fit.history, res.fit.state, plan.spec, {})
    return StudyResult(NAME, cfg, rows, summarise(rows, ["model"]), {}, extras)


def tables(result: StudyResult) -> list[Table]:
    """D's scores, realism of every kind of fake user against the real users, D and the fresh
    detector; or CFGAN's ranking and D's scores."""
    m, title = result.extras.metrics, result.config.name
    if result.config.gan.conditional:
        d = Table(
            f"{title}: D on G's users (last epoch, training batches)",
            ["D(real)", "D(fake)", "d_loss", "g_loss"],
            [[f"{m[k]:.4f}" for k in ("d_real", "d_fake", "d_loss", "g_loss")]],
        )
        return [metrics_table({k: v for k, v in m.items() if "@" in k}, f"{title}: test"), d]
    kinds = [k[len("realism_") :] for k in m if k.startswith("realism_") and k != "realism_real"]
    sel = m["selection"]
    named = [
        ("held-out real (reference)", "d_real_reference"),
        ("held-out real (calibration)", "d_real_calibration"),
        ("G(z), raw [0,1]", "d_gan_raw"),
        *((f"{k} profiles", f"d_{k}_profiles") for k in kinds),
    ]
    d = Table(
        f"{title}: D's probability of 'real' (mean; G and D of epoch {sel['epoch']}, {sel['criterion']})",
        ["users", "D(x)"],
        [[name, f"{m[key]:.4f}"] for name, key in named],
    )
    shown = [row for row in REALISM_ROWS if row in m["realism_real"]]
    r = Table(
        f"{title}: realism vs {m['n_reference_users']} held-out real users "
        "(nn_cosine, diversity: closest to the real column is best)",
        ["figure", *kinds, "real (calibration)"],
        [[row, *(f"{m[f'realism_{k}'][row]:.4f}" for k in [*kinds, "real"])] for row in shown],
    )
    folds = len(m[f"fresh_{kinds[0]}"]["auc_folds"])
    rows = [["fresh detector auc", *(f"{m[f'fresh_{k}']['auc']:.4f}" for k in kinds)]]
    rows += [
        [f"D {row}", *(f"{m[f'detector_{k}'][row]:.4f}" for k in kinds)]
        for row in ("auc", "precision", "recall", "fpr")
    ]
    det = Table(
        f"{title}: detectors (fresh: {folds}-fold ROC-AUC vs reference users; D's threshold: "
        f"{m['fpr_target']:.0%} FPR on calibration users)",
        ["figure", *(f"{k} fakes" for k in kinds)],
        rows,
    )
    return [d, r, det]


def write_report(result: StudyResult, run_dir) -> None:
    """``metrics.json``, ``history.jsonl``, ``samples.npz`` (the run writer), ``results.csv`` /
    ``results.json`` and ``report.md``."""
    cfg, x = result.config, result.extras
    write_run(cfg, x.metrics, x.history, x.samples, NAME)
    write_rows(run_dir / "results.csv", result.rows)
    write_json(run_dir / "results.json", {"rows": result.rows, "summary": result.summary, "timing": result.timing})
    g = cfg.gan
    intro = [f"Data: `{cfg.data.dataset}`; {describe(cfg, None)}, batch {g.batch_size}, seed {g.seed}."]
    text = markdown_report(f"GAN report: {cfg.name}", intro, tables(result), [], result.timing)
    atomic_write(run_dir / "report.md", text)
