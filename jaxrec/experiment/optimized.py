"""The attack study's optimized fake users from the config's ``optimized`` section: the surrogate
built from its config entry (a graph model on the ``segment_sum`` kernel, differentiable in its
fake edges; the ``closed`` kind fits EASE in closed form instead, ``optimized.lam``), every
(seed, size) optimized as members of one program from the ``optimized.init`` attack's profiles,
then rated; and the closed attack's settings chosen on the attacker's own proxy victims
(:func:`tune_closed`). The attack itself is :mod:`jaxrec.attacks.optimized`."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from jaxrec.attacks import poison
from jaxrec.attacks.metrics import members_outcomes, target_metrics, target_ranking
from jaxrec.attacks.optimized_fakes import Settings, scenario_fakes
from jaxrec.attacks.scenario import Scenario, fake_sets
from jaxrec.attacks.shilling import given_profiles
from jaxrec.config import Config
from jaxrec.data.sequences import histories as sequence_histories
from jaxrec.data.sequences import split_order
from jaxrec.evaluate import model_chunk
from jaxrec.experiment.models import build_model
from jaxrec.experiment.sequences import ranking_settings
from jaxrec.experiment.training import train_members
from jaxrec.models import MODELS
from jaxrec.models.sequential import is_sequential


def optimized_fakes(cfg: Config, sc: Scenario, surrogate: Config, kind: str, log) -> tuple[dict, list]:
    """The ``kind`` attack's rated fake profiles ``{(kind, seed, count): [count, n_items]}``, every
    (seed, size) optimized as a member of one program from the ``optimized.init`` attack's
    profiles, and the outer steps' history."""
    a, o, t = cfg.attack, cfg.optimized, surrogate.train
    mcfg = surrogate.model
    if MODELS[mcfg.name].__dataclass_fields__.get("propagation"):
        mcfg = dataclasses.replace(mcfg, propagation="segment_sum")  # differentiable in the fake edges
    model = None if kind == "closed" else build_model(mcfg, sc.split.train)[0]  # closed: EASE, no model
    settings = Settings(
        epochs=t.epochs,
        unroll=0 if kind == "closed" else o.unroll,  # closed: nothing to unroll
        warm=kind == "truncated",
        batch=t.batch_size,
        lr=t.lr,
        l2=t.l2,
        loss=t.loss,
        steps=o.steps,
        outer_lr=o.lr,
        momentum=o.momentum,
        k=o.k,
        outer=o.loss,
        kappa=o.kappa,
        candidates=o.candidates,
        users=o.users,
        resample=o.resample,
        ensemble=1 if kind == "truncated" else o.ensemble,
        closed=o.lam if kind == "closed" else 0.0,
    )
    init = fake_sets(sc, (o.init,), a.seeds, a.seed, a.intent, a.selected)
    init = {(s, count): x for (_, s, count), x in init.items()}
    log(f"{kind} attack: {a.seeds} seed(s) x {len(sc.counts)} size(s) as members, {o.steps} outer steps")

    def on_step(step, record):
        loss, hr = record["outer_loss"], record["surrogate_hr"]
        span = lambda v: f"{min(v):.4f}..{max(v):.4f}"  # noqa: E731
        log(f"{kind} step {step}: outer loss {span(loss)}, surrogate HR@{o.k} {span(hr)}")

    inputs_of = lambda train: build_model(mcfg, train, capacity=len(train))[1]  # noqa: E731
    items, history = scenario_fakes(sc, model, settings, a.seeds, init, t.seed, inputs_of, on_step)
    rated = {
        (kind, s, count): given_profiles(x, sc.stats, sc.targets, intent=a.intent) for (s, count), x in items.items()
    }
    hr = f"surrogate_target_hr@{o.k}"
    return rated, [{"attack": kind, **{hr if k == "surrogate_hr" else k: v for k, v in r.items()}} for r in history]


def members_on_targets(run, sc: Scenario, interacted: list, ks, chunk: int | None = None):
    """``(ranking, outcomes)`` of every member of ``run`` (a :class:`~jaxrec.experiment.training.
    MembersRun`) on ``sc``'s targets: hit@K and score per (real user, target) pair, each user's
    ``interacted`` items masked (:func:`target_ranking`, :func:`members_outcomes`; one member's
    figures: ``target_metrics({k: v[m] for k, v in outcomes.items()}, ranking)``). ``chunk``:
    users per ranking chunk (None: sized for the members)."""
    tr = run.training
    chunk = chunk or model_chunk(tr.model, sc.split.n_items, len(run.configs))
    histories, mask = None, True
    if is_sequential(tr.model):  # queried with the test-time history (train + valid), masked as evaluated
        parts = [sc.split.train, sc.split.valid]
        histories = sequence_histories(parts, split_order(sc.split), tr.model.max_len)
        mask = ranking_settings(run.configs[0], tr.model)["mask_history"]
    ranking = target_ranking(sc.split.train, interacted, sc.targets, sc.n_real, chunk, histories, mask)
    return ranking, members_outcomes(tr.model, run.fit.best, tr.inputs, ranking, ks, tr.data_batched)


def tune_closed(cfg: Config, sc: Scenario, proxies: list, log) -> tuple[Config, list[dict]]:
    """``cfg`` with the closed attack's ``optimized.lam`` and ``kappa`` chosen on the attacker's
    proxies, and one row per grid point (``lam``, ``kappa``, ``proxy_target_hr@K`` per proxy and
    their ``mean``, ``chosen``).

    Every point of ``tune_lam x tune_kappa`` (an empty grid: the value as set) runs the attack
    once (seed 0, the largest size); each proxy of ``proxies`` (``[(label, config)]``) is trained
    on every poisoned training part as members of one program, with ``train.seed +
    optimized.proxy_seed``, and judged by target HR@K (K = ``optimized.k``) over the real users,
    their training items masked: the attacker sees neither the victims, their seeds nor the
    validation and test parts. The point with the best mean over the proxies wins (the first
    on a tie)."""
    o, a = cfg.optimized, cfg.attack
    grid = list(itertools.product(o.tune_lam or (o.lam,), o.tune_kappa or (o.kappa,)))
    count = max(sc.counts)
    one = dataclasses.replace(sc, counts=[count])
    trains = []
    log(f"closed: {len(grid)} settings on {len(proxies)} proxy victim(s), {count} fakes")
    for i, (lam, kappa) in enumerate(grid):
        log(f"closed setting {i + 1}/{len(grid)}: lam {lam:g}, kappa {kappa:g}")
        point = dataclasses.replace(
            cfg,
            optimized=dataclasses.replace(o, lam=lam, kappa=kappa),
            attack=dataclasses.replace(a, seeds=1),
        )
        rated, _ = optimized_fakes(point, one, cfg, "closed", lambda _: None)
        injected = poison.inject(sc.rated.train, rated["closed", 0, count], sc.n_real)
        trains.append(poison.positives(injected, a.threshold))
    key = f"target_hr@{o.k}"
    figures = np.zeros((len(grid), len(proxies)))
    for j, (label, pcfg) in enumerate(proxies):
        log(f"closed: proxy {label} trained on the {len(grid)} poisoned sets as members of one program")
        own = dataclasses.replace(pcfg.train, seed=pcfg.train.seed + o.proxy_seed, eval_every=0)  # no validation
        seeded = dataclasses.replace(pcfg, train=own)
        run = train_members([seeded] * len(grid), sc.split, progress=False, trains=trains, test=False)
        ranking, out = members_on_targets(run, sc, [sc.rated.train], (o.k,), pcfg.eval.chunk)
        figures[:, j] = [target_metrics({k: v[m] for k, v in out.items()}, ranking)[key] for m in range(len(grid))]
    best = int(np.argmax(figures.mean(axis=1)))
    rows = [
        {
            "lam": lam,
            "kappa": kappa,
            **{f"proxy_{key} {label}": float(figures[i, j]) for j, (label, _) in enumerate(proxies)},
            f"proxy_{key}": float(figures[i].mean()),
            "chosen": i == best,
        }
        for i, (lam, kappa) in enumerate(grid)
    ]
    for r in rows:
        log(f"closed lam {r['lam']:g} kappa {r['kappa']:g}: proxies' {key} {r[f'proxy_{key}']:.4f}")
    lam, kappa = grid[best]
    log(f"closed: chose lam {lam:g}, kappa {kappa:g}")
    return dataclasses.replace(cfg, optimized=dataclasses.replace(o, lam=lam, kappa=kappa)), rows
