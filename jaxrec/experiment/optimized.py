"""The attack study's optimized fake users from the config's ``optimized`` section: the surrogate
built from its config entry (a graph model on the ``segment_sum`` kernel, differentiable in its
fake edges; the ``closed`` kind fits EASE in closed form instead, ``optimized.lam``), every
(seed, size) optimized as members of one program from the ``optimized.init`` attack's profiles,
then rated. The attack itself is :mod:`jaxrec.attacks.optimized`."""

from __future__ import annotations

import dataclasses

from jaxrec.attacks.optimized_fakes import Settings, scenario_fakes
from jaxrec.attacks.scenario import Scenario, fake_sets
from jaxrec.attacks.shilling import given_profiles
from jaxrec.config import Config
from jaxrec.experiment.models import build_model
from jaxrec.models import MODELS


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
        unroll=o.unroll,
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
