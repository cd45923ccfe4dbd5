"""Optimized fake users for an attack scenario: every (seed, size) of
:class:`jaxrec.attacks.scenario.Scenario` optimized by :mod:`jaxrec.attacks.optimized` as members
of one program, from a heuristic attack's profiles (the attack study's ``bilevel`` and
``truncated`` kinds)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.attacks.optimized import Spec, members_init, optimize, problem
from jaxrec.attacks.outer import outer_optimizer


@dataclasses.dataclass(frozen=True)
class Settings:
    """An optimized attack's settings, plain values (the attack study reads them from its
    ``optimized`` config section; each is described there)."""

    epochs: int = 20
    unroll: int = 5
    warm: bool = False
    batch: int = 2048
    lr: float = 1e-2
    l2: float = 0.0
    loss: str = "bpr"
    steps: int = 30
    outer_lr: float = 1.0
    momentum: float = 0.95
    k: int = 50
    outer: str = "logsigmoid"
    kappa: float = 1.0
    candidates: int = 0
    users: int = 0
    resample: bool = False
    ensemble: int = 1
    closed: float = 0.0


def scenario_fakes(sc, model, settings: Settings, seeds: int, init: dict, seed: int = 0, inputs_of=None, on_step=None):
    """Optimize the fake profiles of every (seed, size) of the scenario ``sc``
    (:class:`jaxrec.attacks.scenario.Scenario`) as members of one program.

    Args:
      model: the surrogate over ``sc.split``'s widened id space (a graph model needs ``inputs_of``,
        with a kernel differentiable in its edge weights: ``segment_sum``).
      init: ``{(s, count): [count, n_items]}`` the profiles each attack starts from (e.g. a
        heuristic attack's; their filler items, targets aside, and their filler sizes).
    Returns ``({(s, count): 0/1 [count, n_items]}, history)``: the optimized items (targets in) and
    one row per (outer step, member): ``step``, ``seed``, ``size``, ``outer_loss``,
    ``surrogate_hr`` (the surrogate's target HR@K of the profile the step started from),
    ``changed`` (items the step swapped). ``on_step(step, record)`` sees each step's ``[M]`` lists.
    A non-finite outer loss or hypergradient raises :class:`~jaxrec.errors.JaxrecError` naming the
    outer step, the seed and the size (:func:`~jaxrec.attacks.optimized.optimize`).
    """
    train, n_real, slots = sc.split.train, sc.n_real, max(sc.counts)
    real = train.select(train.users < n_real)
    candidates = None
    if settings.candidates:
        popular = np.argsort(-real.item_counts(), kind="stable")[: settings.candidates]
        candidates = np.union1d(popular, sc.targets)
    users = None
    if settings.users:
        pool = np.flatnonzero(real.user_counts()[:n_real] > 0)
        users = np.sort(np.random.default_rng(seed).choice(pool, min(settings.users, pool.size), replace=False))
    gram = settings.closed > 0  # the closed form needs co-occurrences, not a graph
    inputs_of = None if gram else inputs_of
    prob, n_real_pairs = problem(train, n_real, slots, settings.batch, candidates, inputs_of, users, gram)
    cand = np.asarray(prob.candidates)
    col = np.full(train.n_items, -1)
    col[cand] = np.arange(cand.size)
    spec = Spec(
        model,
        settings.loss,
        settings.l2,
        settings.batch,
        settings.lr,
        settings.epochs,
        settings.unroll,
        settings.warm,
        settings.k,
        settings.outer,
        settings.kappa,
        slots,
        cand.size,
        n_real_pairs,
        settings.resample,
        settings.ensemble,
        settings.closed,
    )
    members = [(s, count) for s in range(seeds) for count in sc.counts]
    targets = np.asarray(col[sc.targets], np.int32)
    profile0 = np.zeros((len(members), slots, cand.size), np.float32)
    lengths = np.zeros((len(members), slots), np.int32)
    for m, (s, count) in enumerate(members):
        chosen = np.asarray(init[s, count]) > 0
        chosen[:, sc.targets] = False
        rows, items = np.nonzero(chosen[:, cand])
        profile0[m, rows, items] = 1.0
        lengths[m, :count] = chosen.sum(1)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed), s))(jnp.asarray([s for s, _ in members]))
    tx = outer_optimizer(settings.outer_lr, settings.momentum)
    atts = members_init(
        spec,
        tx,
        prob,
        jnp.asarray(profile0),
        jnp.tile(targets, (len(members), 1)),
        jnp.asarray(lengths),
        settings.epochs if settings.warm else 0,
        keys,
    )
    labels = [f"seed {s}, {count} fakes" for s, count in members]
    atts, records = optimize(spec, tx, prob, atts, settings.steps, on_step, labels)
    history = [
        {"step": r["step"], "seed": s, "size": count, **{k: r[k][m] for k in ("outer_loss", "surrogate_hr", "changed")}}
        for r in records
        for m, (s, count) in enumerate(members)
    ]
    final = np.asarray(atts.profile)
    out = {}
    for m, (s, count) in enumerate(members):
        items = np.zeros((count, train.n_items), np.float32)
        items[:, cand] = final[m, :count]
        out[s, count] = items
    return out, history
