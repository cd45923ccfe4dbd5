"""The closed attack's settings chosen on the attacker's own proxy victims
(jaxrec.experiment.optimized.tune_closed): each grid point's figure equals a separate proxy run on
that point's poisoned data, the best mean wins, and nothing of the validation or test parts or the
victims' seeds is used."""

import dataclasses

import numpy as np
import pytest

from jaxrec.attacks import poison
from jaxrec.attacks.metrics import members_outcomes, target_metrics, target_ranking
from jaxrec.attacks.scenario import scenario
from jaxrec.config import AttackConfig, Config, EvalConfig, ModelConfig, OptimizedConfig, TrainConfig
from jaxrec.data.interactions import Interactions
from jaxrec.experiment.optimized import optimized_fakes, tune_closed
from jaxrec.experiment.training import train_members

GRID = dict(tune_lam=(2.0, 50.0), tune_kappa=(0.05, 1.0))


def _config(**optimized) -> Config:
    return Config(
        model=ModelConfig(dim=4, initializer="normal", init_std=0.1),
        eval=EvalConfig(ks=(5,)),
        train=TrainConfig(epochs=3, batch_size=64, lr=0.05, seed=3),
        attack=AttackConfig(seeds=2, filler=5),
        optimized=OptimizedConfig(steps=2, unroll=1, k=5, loss="hr", **optimized),
    )


@pytest.fixture(scope="module")
def tuned(rated_split):
    sc = scenario(rated_split, (2, 3), 4.0, (), 2, "unpopular", 0, 5, 0.2)
    cfg = _config(**GRID)
    proxies = [("mf", cfg), ("mf-dim8", dataclasses.replace(cfg, model=ModelConfig(dim=8)))]
    chosen, rows = tune_closed(cfg, sc, proxies, lambda _: None)
    return sc, cfg, proxies, chosen, rows


def test_each_setting_is_judged_by_separate_proxy_runs_and_the_best_mean_wins(tuned):
    """Reference per grid point: the attack alone (seed 0, the largest size), then each proxy
    alone with ``train.seed + proxy_seed`` on that poisoned training part, its target HR@K over
    the real users with only their training items masked."""
    sc, cfg, proxies, chosen, rows = tuned
    count = max(sc.counts)
    assert [(r["lam"], r["kappa"]) for r in rows] == [(2.0, 0.05), (2.0, 1.0), (50.0, 0.05), (50.0, 1.0)]
    for r in rows:
        point = dataclasses.replace(
            cfg,
            optimized=dataclasses.replace(cfg.optimized, lam=r["lam"], kappa=r["kappa"]),
            attack=dataclasses.replace(cfg.attack, seeds=1),
        )
        fakes, _ = optimized_fakes(point, dataclasses.replace(sc, counts=[count]), cfg, "closed", lambda _: None)
        train = poison.positives(poison.inject(sc.rated.train, fakes["closed", 0, count], sc.n_real), 4.0)
        figures = []
        for label, pcfg in proxies:
            alone = dataclasses.replace(pcfg, train=dataclasses.replace(pcfg.train, seed=3 + 1000))
            run = train_members([alone], sc.split, progress=False, trains=[train], test=False)
            ranking = target_ranking(sc.split.train, [sc.rated.train], sc.targets, sc.n_real)
            tr = run.training
            out = members_outcomes(tr.model, run.fit.best, tr.inputs, ranking, (5,), tr.data_batched)
            hr = target_metrics({k: v[0] for k, v in out.items()}, ranking)["target_hr@5"]
            assert r[f"proxy_target_hr@5 {label}"] == pytest.approx(hr, abs=1e-6)
            figures.append(hr)
        assert r["proxy_target_hr@5"] == pytest.approx(np.mean(figures), abs=1e-6)
    means = [r["proxy_target_hr@5"] for r in rows]
    best = int(np.argmax(means))
    assert [r["chosen"] for r in rows] == [i == best for i in range(len(rows))]
    assert (chosen.optimized.lam, chosen.optimized.kappa) == (rows[best]["lam"], rows[best]["kappa"])
    assert dataclasses.replace(chosen.optimized, lam=cfg.optimized.lam, kappa=cfg.optimized.kappa) == cfg.optimized


def test_tuning_reads_neither_validation_nor_test_parts(tuned):
    """The same scenario whose validation and test parts are replaced -- every real user now
    rated every target there, which would leave nobody eligible if the tuning read them -- gives
    the same figures: the attacker never sees those parts."""
    sc, cfg, proxies, _, rows = tuned
    users = np.repeat(np.arange(sc.n_real), sc.targets.size)
    items = np.tile(sc.targets, sc.n_real)
    n_users, n_items = sc.rated.train.n_users, sc.rated.train.n_items
    everyone = Interactions(users, items, n_users, n_items, ratings=np.full(users.size, 5.0, np.float32), source="x")
    sc2 = dataclasses.replace(
        sc,
        rated=dataclasses.replace(sc.rated, valid=everyone, test=everyone),
        split=dataclasses.replace(sc.split, valid=everyone, test=everyone),
    )
    _, rows2 = tune_closed(cfg, sc2, proxies, lambda _: None)
    assert rows2 == rows
    assert any(r["proxy_target_hr@5"] > 0 for r in rows)  # the figures are not all zero
