"""The profile-pollution half of ``jaxrec robustness`` (:mod:`jaxrec.robustness.pollution`): its
targets, its rows per trained member, and its tables and plots.

For every sequence victim, trained member, attack (``robustness.pollution``) and mode
(``robustness.pollution_modes``), one compiled program substitutes ``k = 0..K`` items of every
evaluated test user's history and ranks the polluted histories under every protocol of
``robustness.pollution_protocols`` (the full ranking and the sampled one: the held-out item
against ``eval.negatives`` items, the SASRec paper's). Untargeted rows give each metric and its
change from ``k = 0`` (``delta_ndcg@K`` ...); targeted rows give the targets' metrics
(``target_hit@K`` ...: each target over the users who never interacted with it, averaged over
the targets, as the attack protocol averages them) and their change.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxrec.attacks.poison import pick_targets, target_indices
from jaxrec.evaluate import model_chunk, split_ranking
from jaxrec.experiment.report import Table, pivot, plot_curves
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.robustness.pollution import Pollution, pollution_sweep, target_rows

METRICS = ("ndcg", "hit")  #: reported at every K of eval.ks


def pollution_targets(r, split) -> np.ndarray:
    """The target items (indices): ``pollution_targets`` as raw ids, else ``pollution_n_targets``
    drawn (seeded by ``eval.seed``'s neighbour 0) from ``pollution_target_pool``, as the attack
    protocol draws them."""
    if r.pollution_targets:
        return target_indices(r.pollution_targets, split.train)
    return pick_targets(split.train, r.pollution_n_targets, r.pollution_target_pool, 0)


def pollution_rows(base: dict, vcfg, clean_run, split, ks, spec: Pollution, r, targets, timing: dict) -> list[dict]:
    """One row per (member, attack, mode, protocol, k) of one victim (see the module docstring)."""
    tr = clean_run.training
    model = tr.model
    chunk = vcfg.eval.chunk or model_chunk(model, split.n_items, spec.candidates)
    settings = ranking_settings(vcfg, model)
    rankings = {p: split_ranking(split, "test", chunk, **{**settings, "protocol": p}) for p in r.pollution_protocols}
    parts = [p for p in (split.train, split.valid, split.test) if p is not None]
    pairs = {p: target_rows(rk, parts, targets, chunk) for p, rk in rankings.items()} if targets is not None else {}
    out = []
    for m, mcfg in enumerate(clean_run.configs):
        one = clean_run.fit.member(m)
        if one.failed:
            continue
        for attack in r.pollution:
            for mode in r.pollution_modes:
                targeted = mode == "targeted"
                res = pollution_sweep(
                    model,
                    one.best_params,
                    rankings,
                    spec._replace(attack=attack),
                    ks=ks,
                    target_items=targets if targeted else None,
                    target_rankings=pairs if targeted else None,
                    key=jax.random.key(mcfg.train.seed),
                )
                for p in rankings:
                    values = res.targets[p] if targeted else res.users[p]
                    prefix = "target_" if targeted else ""
                    for k in range(spec.max_k + 1):
                        row = {
                            **base,
                            "train_seed": mcfg.train.seed,
                            "attack": attack,
                            "mode": mode,
                            "protocol": p,
                            "k": k,
                            "exhausted": int(res.exhausted[k]),
                            "failed": False,
                        }
                        for metric in METRICS:
                            for K in ks:
                                v = values[f"{metric}@{K}"]
                                row[f"{prefix}{metric}@{K}"] = float(v[k])
                                row[f"{prefix}delta_{metric}@{K}"] = float(v[k] - v[0])
                        out.append(row)
    timing["pollution_users"] = int(np.asarray(rankings[next(iter(rankings))].mask).sum())
    return out


def tables(summary: list[dict], ks) -> list[Table]:
    """Per mode: the change of NDCG@K (untargeted) or the targets' HR@K and NDCG@K (targeted)
    against k, one row per (victim, attack, protocol)."""
    K = max(ks)
    by = ["victim", "attack", "protocol"]
    out = []
    untargeted = [s for s in summary if s["mode"] == "untargeted"]
    targeted = [s for s in summary if s["mode"] == "targeted"]
    if untargeted:
        for m in (f"delta_ndcg@{K}", f"delta_hit@{K}"):
            out.append(pivot(f"untargeted pollution: {m} (polluted - clean) against k", untargeted, by, "k", m, 4))
    if targeted:
        for m in (f"target_hit@{K}", f"target_ndcg@{K}"):
            out.append(pivot(f"targeted pollution: {m} against k", targeted, by, "k", m, 4))
    if summary:
        exhausted = [s for s in summary if s["protocol"] == summary[0]["protocol"]]
        out.append(
            pivot("users with fewer real items than k (all substituted)", exhausted, by[:2], "k", "exhausted", 1)
        )
    return out


def plots(summary: list[dict], ks, run_dir) -> list:
    """``pollution_<metric>_vs_k.png``: one curve per (victim, attack, protocol), per mode."""
    K = max(ks)
    out = []
    for mode, metric in (("untargeted", f"ndcg@{K}"), ("targeted", f"target_hit@{K}")):
        rows = [s for s in summary if s["mode"] == mode]
        if rows:
            out.append(
                plot_curves(
                    rows,
                    "k",
                    metric,
                    ["victim", "attack", "protocol"],
                    run_dir / f"pollution_{metric}_vs_k.png",
                    f"{mode} profile pollution: {metric}",
                    "k: substituted items of each test user's history",
                )
            )
    return out
