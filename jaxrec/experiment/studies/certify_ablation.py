"""``jaxrec certify``'s certificate against profile pollution: the randomized-ablation recommender
(:mod:`jaxrec.robustness.ablation`, Levine & Feizi AAAI 2020) of this config's sequence model,
certified against the substitution of up to ``r`` items of a user's own history
(:mod:`jaxrec.robustness.ablation_certificate`).

The base is the config's model trained once on the training part (``train`` section). Each test
user's query is its test-time history window; every one of ``certify.ablation_votes`` (T) votes
shows the base ``certify.ablation_keep`` (m) of the user's last ``certify.ablation_last`` (n)
items and counts its top ``certify.votes`` (N'), on device. The smoothed recommender ranks by
votes; its certified HR@N and NDCG@N against ``r = 0 .. certify.max_radius`` come with
confidence ``1 - certify.alpha`` (Clopper-Pearson, Bonferroni over both bounds of every item of a
user), and its clean cost is its accuracy against the base's own (``hr@N``, ``ndcg@N``).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxrec.config import Config
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import evaluate_params, split_ranking
from jaxrec.experiment.training import train_members
from jaxrec.robustness.ablation import Ablation, ablation_votes, real_lengths, sequence_scorer
from jaxrec.robustness.ablation_certificate import certified_curve, certify_ablation, smoothed_metrics


def spec_of(cfg: Config) -> Ablation:
    c = cfg.certify
    return Ablation(keep=c.ablation_keep, last=c.ablation_last, votes=c.ablation_votes, n_votes=c.votes)


def check(cfg: Config, max_len: int) -> None:
    """The ablation settings, one keyed line each, before any training."""
    c = cfg.certify
    if not 1 <= c.ablation_keep < c.ablation_last:
        raise JaxrecError(
            f"certify.ablation_keep: m={c.ablation_keep} must be between 1 and ablation_last - 1 "
            f"(n={c.ablation_last}): with m >= n every vote sees the whole history and nothing is certified"
        )
    if c.ablation_last > max_len:
        raise JaxrecError(f"certify.ablation_last: n={c.ablation_last} is more than the model's max_len {max_len}")


def ablation_rows(cfg: Config, split, log) -> tuple[list[dict], dict, dict]:
    """Rows per radius ``r`` (``certified_hit@N``, ``certified_ndcg@N``), the summary (the
    smoothed and the base recommenders' clean ``hit@N`` / ``ndcg@N``, the users' certified radii
    of their held-out item) and timings."""
    c = cfg.certify
    label = f"ablation-{cfg.model.name}"
    log(f"{label}: training the base ({cfg.train.epochs} epochs)")
    t0 = time.perf_counter()
    run = train_members([cfg], split, progress=False)
    train_s = time.perf_counter() - t0
    model = run.training.model
    params = jax.tree.map(lambda a: a[0], run.fit.best)
    data, windows, users, held = ablation_queries(split, model.max_len)
    spec = spec_of(cfg)
    log(f"{label}: {spec.votes} votes per user for {users.size} users")
    t0 = time.perf_counter()
    variables = {**params, **run.training.inputs}
    counts = ablation_votes(
        sequence_scorer(model), variables, windows, users, jax.random.key(c.seed), spec, n_items=split.n_items
    )
    votes_s = time.perf_counter() - t0
    cert = certify_ablation(
        counts,
        spec.votes,
        real_lengths(windows, split.n_items),
        keep=spec.keep,
        last=spec.last,
        top_n=c.top_n,
        alpha=c.alpha,
        max_radius=c.max_radius,
        held=held,
    )
    curve = certified_curve(cert.held_rank, c.top_n)
    n = c.top_n
    rows = [
        {
            "base": label,
            "votes": spec.votes,
            "radius": r,
            f"certified_hit@{n}": float(curve[f"hit@{n}"][r]),
            f"certified_ndcg@{n}": float(curve[f"ndcg@{n}"][r]),
            "failed": False,
        }
        for r in range(c.max_radius + 1)
    ]
    smoothed = smoothed_metrics(counts, held, n)
    base = evaluate_params(model, variables, data, (n,))  # the base on the same users and windows
    summary = {
        "base": label,
        "votes": spec.votes,
        "keep": spec.keep,
        "last": spec.last,
        "users": int(users.size),
        f"smoothed_hit@{n}": smoothed[f"hit@{n}"],
        f"smoothed_ndcg@{n}": smoothed[f"ndcg@{n}"],
        f"base_hit@{n}": float(base[f"hit@{n}"]),
        f"base_ndcg@{n}": float(base[f"ndcg@{n}"]),
        "radius_of_held_item_median": float(np.median(_held_radius(cert.held_rank, n))),
    }
    timing = {
        f"{label}_train_s": train_s,
        f"{label}_votes_s": votes_s,
        f"{label}_user_votes_per_s": users.size * spec.votes / votes_s,
    }
    return rows, summary, timing


def ablation_queries(split, max_len: int) -> tuple:
    """The test ranking (full, history unmasked) and, per evaluated user, its history window
    ``[U, max_len]``, its id ``[U]`` and its held-out item ``[U]``: what the ablation votes read."""
    data = split_ranking(split, "test", max_len=max_len, mask_history=False)
    mask = np.asarray(data.mask).reshape(-1)
    windows = np.asarray(data.queries).reshape(mask.size, -1)[mask]
    users = np.asarray(data.users).reshape(-1)[mask]
    held = np.asarray(data.targets)[..., 0].reshape(-1)[mask]
    return data, windows, users, held


def _held_radius(held_rank: np.ndarray, top_n: int) -> np.ndarray:
    """``[U]`` the largest ``r`` whose rank bound keeps the held-out item in the top-N (-1: none)."""
    users = held_rank[:, 0] > 0
    return np.sum(held_rank[users] <= top_n, axis=1) - 1
