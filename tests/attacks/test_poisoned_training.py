"""Poisoned retraining as members: empty fake-user slots change nothing, a member equals its
separate run, and a push attack raises the targets' predicted scores."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxrec.attacks import members_outcomes, poison, target_metrics, target_ranking
from jaxrec.attacks.detection import pca_suspicion, rdma
from jaxrec.attacks.shilling import fake_profiles, profile_seed, rating_stats
from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.experiment.training import build_training, train_members

SLOTS, TARGETS = 8, [3, 11]


def _cfg(epochs=3, lr=0.01, seed=0) -> Config:
    return Config(
        model=ModelConfig(name="mf", dim=8),
        eval=EvalConfig(ks=(5, 10)),
        train=TrainConfig(epochs=epochs, batch_size=16, lr=lr, l2=1e-3, seed=seed),
    )


@pytest.fixture(scope="module")
def poisoned(rated_split):
    """The positives split with SLOTS fake-user slots and training sets with 0, 3 and 8 fakes."""
    wide = poison.widen_split(rated_split, SLOTS)
    split = poison.positives_split(wide, 4.0)
    p = fake_profiles("average", SLOTS, rating_stats(rated_split.train), TARGETS, filler=6, seed=0)
    n_real = rated_split.n_users
    trains = {k: poison.positives(poison.inject(wide.train, p[:k], n_real), 4.0) for k in (3, SLOTS)}
    trains[0] = split.train
    return wide, split, trains, n_real


def test_a_member_with_k_fakes_equals_its_separate_run_and_empty_slots_stay_untouched(poisoned):
    _, split, trains, n_real = poisoned
    cfg = _cfg()
    together = train_members([cfg, cfg], split, progress=False, trains=[trains[3], trains[SLOTS]])
    alone = train_members([cfg], split, progress=False, trains=[trains[3]])
    a, b = together.fit.member(0), alone.fit.member(0)
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    for k, v in alone.metrics[0].items():
        assert together.metrics[0][k] == pytest.approx(v, abs=1e-5), k
    # the 5 unused slots of member 0 (3 fakes) never moved: no loss term, no gradient, no update
    init = build_training([cfg], split).state.params["params"]["embeddings"]["user"][0]
    got = np.asarray(a.state.params["params"]["embeddings"]["user"])
    np.testing.assert_array_equal(got[n_real + 3 :], np.asarray(init)[n_real + 3 :])
    assert not np.allclose(got[n_real : n_real + 3], np.asarray(init)[n_real : n_real + 3])  # the fakes trained


def test_a_push_attack_raises_the_targets_predicted_scores(poisoned):
    """Clean and 8-fake training sets, same seed, 30 epochs: the targets' mean score over the
    eligible real users goes up, and so does their hit ratio."""
    wide, split, trains, n_real = poisoned
    cfg = _cfg(epochs=30, lr=0.02)
    run = train_members([cfg, cfg], split, progress=False, trains=[trains[0], trains[SLOTS]])
    ranking = target_ranking(split.train, [wide.train, wide.valid, wide.test], TARGETS, n_real)
    out = members_outcomes(run.training.model, run.fit.state.params, run.training.inputs, ranking, (5,), True)
    clean = target_metrics({k: v[0] for k, v in out.items()}, ranking)
    attacked = target_metrics({k: v[1] for k, v in out.items()}, ranking, out["score"][0])
    assert attacked["target_score_shift"] > 0.1  # measured 0.24 (scores are dot products near 0)
    assert attacked["target_hr@5"] > clean["target_hr@5"] + 0.1  # measured 0.20 -> 0.35


def test_run_attack_end_to_end_on_tiny_data(rated_split, tmp_path):
    """Every (attack, size, seed, defense) row; a row equals the separate run of its variant;
    the files and plots are written."""
    from jaxrec.attacks.scenario import fake_sets, poisoned_sets
    from jaxrec.experiment import run_attack
    from jaxrec.experiment.studies.attack import _detectors

    cfg = dataclasses.replace(
        _cfg(epochs=2),
        name="tiny-attack",
        output_dir=str(tmp_path),
        attack=dataclasses.replace(
            Config().attack,
            kinds=("bandwagon",),
            sizes=(2.0, 4.0),
            seeds=2,
            filler=5,
            selected=2,
            n_targets=2,
            detectors=("pca", "rdma"),
            trusted=0.2,
        ),
    )
    res = run_attack(cfg, progress=False, rated=rated_split)
    assert len(res.rows) == 2 + 2 * 2 * 3  # clean seeds + sizes x seeds x (none, pca, rdma)
    assert {r["defense"] for r in res.rows} == {"none", "pca", "rdma"}
    # a filter row's ROC-AUC from the definition: its detector's suspicion of the fake users above
    # the untrusted real users', counted over pairs
    sc = res.extras.scenario  # the seed-0, 4-fake bandwagon attack, written again by hand:
    profiles = fake_profiles("bandwagon", 4, sc.stats, sc.targets, 5, profile_seed(0, "bandwagon"), selected=2)
    rated = poison.inject(sc.rated.train, profiles, sc.n_real)
    present = np.r_[sc.real_users, sc.n_real + np.arange(4)]
    r = rated.dense(rated=True)[present]
    for name, suspicion in (("pca", pca_suspicion(r, 3)), ("rdma", rdma(r))):
        real = ~np.isin(present, sc.trusted) & (present < sc.n_real)
        pairs = suspicion[-4:, None] - suspicion[real][None, :]
        row = next(x for x in res.rows if (x["defense"], x["size"], x["seed"]) == (name, 4, 0))
        assert row["detect_auc"] == pytest.approx(np.mean((pairs > 0) + 0.5 * (pairs == 0)), abs=1e-9), name
    names = {p.name for p in res.run_dir.iterdir()}
    assert {
        "config.yaml",
        "results.json",
        "results.csv",
        "report.md",
        "roc_bandwagon.png",
        "target_hr@5_vs_size_bandwagon.png",
    } <= names
    # the (bandwagon, 4 fakes, seed 1, no defense) member against its own separate run
    a, setup = cfg.attack, res.extras.scenario
    fakes = fake_sets(setup, a.kinds, a.seeds, a.seed, a.intent, a.selected)
    variants, _ = poisoned_sets(setup, fakes, a.kinds, a.seeds, a.threshold, _detectors(cfg, None), a.fpr)
    v = next(v for v in variants if (v.kind, v.count, v.seed, v.defense) == ("bandwagon", 4, 1, "none"))
    seed_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + 1))
    alone = train_members([seed_cfg], setup.split, progress=False, trains=[v.train])
    row = next(r for r in res.rows if (r["attack"], r["size"], r["seed"], r["defense"]) == ("bandwagon", 4, 1, "none"))
    for k in ("recall@5", "ndcg@10"):
        assert row[k] == pytest.approx(alone.metrics[0][k], abs=1e-5)
    # the defense table: every defense at the largest size, its cells from the summary
    from jaxrec.experiment.studies.attack import tables

    table = next(t for t in tables(res) if t.title.startswith("defenses"))
    assert sorted((r[1], r[2]) for r in table.rows) == [
        ("none", "bandwagon"),
        ("pca", "bandwagon"),
        ("rdma", "bandwagon"),
    ]
    s = next(x for x in res.summary if (x["defense"], x["attack"], x["size"]) == ("pca", "bandwagon", 4))
    ks = sorted(cfg.eval.ks)
    assert next(r for r in table.rows if r[1] == "pca")[3].startswith(f"{s[f'target_hr@{ks[0]}_mean']:.4f}")


def test_a_certified_ensemble_is_a_defense_of_the_attack_study(rated_split, tmp_path):
    """``attack.certified``: the item-based ensemble retrained on each poisoned set; its target
    HR equals one computed by hand from the votes of the same ensemble."""
    from jaxrec.attacks.scenario import fake_sets, poisoned_sets
    from jaxrec.config import CertifyConfig
    from jaxrec.experiment import certified, run_attack

    cfg = dataclasses.replace(
        _cfg(epochs=1),
        name="certified-attack",
        output_dir=str(tmp_path),
        attack=dataclasses.replace(
            Config().attack,
            kinds=("bandwagon",),
            sizes=(4.0,),
            seeds=1,
            filler=5,
            selected=2,
            n_targets=2,
            detectors=(),
            trusted=0.2,
            certified=("item",),
        ),
        certify=CertifyConfig(sub_models=30, subsample=8, votes=2, chunk=16),
    )
    res = run_attack(cfg, progress=False, rated=rated_split)
    rows = {(r["attack"], r["size"]): r for r in res.rows if r["defense"] == "certified"}
    assert set(rows) == {("clean", 0), ("bandwagon", 4)}
    sc, a = res.extras.scenario, cfg.attack
    fakes = fake_sets(sc, a.kinds, a.seeds, a.seed, a.intent, a.selected)
    variants, _ = poisoned_sets(sc, fakes, a.kinds, a.seeds, a.threshold, {}, a.fpr)
    v = next(v for v in variants if v.defense == "none")
    votes = certified.ensemble(cfg, sc.split, "item", train=v.train).votes.astype(np.float64)
    seen = np.zeros(votes.shape, bool)
    seen[sc.split.train.users, sc.split.train.items] = True
    interacted = set()
    for part in (sc.rated.train, sc.rated.valid, sc.rated.test):
        interacted |= set(zip(part.users.tolist(), part.items.tolist()))
    per_target = []
    for t in sc.targets:
        hits = []
        for u in range(sc.n_real):
            if (u, int(t)) in interacted:
                continue
            s = np.where(seen[u], -np.inf, votes[u])
            rank = np.sum(s > s[t]) + np.sum((s == s[t]) & (np.arange(s.size) < t))
            hits.append(rank < 5)
        per_target.append(np.mean(hits))
    assert rows["bandwagon", 4]["target_hr@5"] == pytest.approx(np.mean(per_target), abs=1e-9)
    assert rows["bandwagon", 4]["target_hr@5"] > rows["clean", 0]["target_hr@5"]  # the fakes reach the ensemble
