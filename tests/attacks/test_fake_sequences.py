"""Fake sequences against sequence victims: the heuristic kinds' layout, injection in order,
poisoned sequence training sets as members equal to their separate runs (padding batches are
no steps), and the bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import timed_events_csv

from jaxrec.attacks import poison
from jaxrec.attacks.sequences import fake_sequences, inject_sequences
from jaxrec.config import AttackConfig, Config, DataConfig, EvalConfig, ModelConfig, OptimizedConfig, TrainConfig
from jaxrec.data.sequences import ordered_items
from jaxrec.errors import JaxrecError
from jaxrec.experiment.data import load_split
from jaxrec.experiment.training import train_members

MAX_LEN, N_ITEMS, SLOTS = 6, 20, 12
TARGETS = [3, 11]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A sequence split (timestamps) with SLOTS fake-user slots."""
    path = timed_events_csv(tmp_path_factory.mktemp("s"), 30, N_ITEMS, (4, 12), seed=5, t0=100)
    split = load_split(DataConfig(dataset=str(path), split="leave_one_out"), sequential=True)
    return split, poison.widen_split(split, SLOTS), path


def _fakes(split, kind="bandwagon", n=SLOTS, seed=0):
    lengths = split.train.user_counts()
    return fake_sequences(kind, n, lengths, split.train.item_counts(), TARGETS, seed, MAX_LEN, selected=3)


@pytest.mark.parametrize("kind", ["random", "popular", "bandwagon"])
def test_heuristic_fakes_interleave_the_targets_with_filler_of_their_kind(wide, kind):
    split, _, _ = wide
    seqs = _fakes(split, kind, n=50)
    lengths = np.sum(seqs >= 0, axis=1)
    real = split.train.user_counts()
    assert set(lengths) <= set(np.minimum(real[real >= 2], MAX_LEN))  # drawn from the real lengths
    assert np.all(seqs[:, ::2][seqs[:, ::2] >= 0] != 3) and np.all(seqs[:, ::2][seqs[:, ::2] >= 0] != 11)
    odd = seqs[:, 1::2]
    assert set(odd[odd >= 0]) == set(TARGETS)  # every second event a target
    assert np.all((seqs >= 0) == (np.arange(MAX_LEN) < lengths[:, None]))  # -1 only after the end
    if kind == "bandwagon":  # the 3 most popular non-target items only
        pop = split.train.item_counts().astype(float)
        pop[TARGETS] = -1
        top = set(np.argsort(-pop, kind="stable")[:3])
        assert set(seqs[:, ::2][seqs[:, ::2] >= 0]) <= top


def test_injected_fakes_keep_their_order_and_slots(wide):
    split, w, _ = wide
    seqs = _fakes(split, n=3)
    poisoned = inject_sequences(w.train, seqs, split.n_users)
    indptr, items = ordered_items([poisoned], "time")
    for r in range(3):
        u = split.n_users + r
        np.testing.assert_array_equal(items[indptr[u] : indptr[u + 1]], seqs[r][seqs[r] >= 0])
    assert indptr[-1] - indptr[split.n_users] == np.sum(seqs >= 0)  # the other slots stay empty
    with pytest.raises(JaxrecError, match="already have interactions"):
        inject_sequences(poisoned, seqs, split.n_users)
    with pytest.raises(JaxrecError, match="above the victim's max_len 6"):
        fake_sequences("random", 2, np.array([5]), split.train.item_counts(), TARGETS, 0, MAX_LEN, fixed=7)


def _cfg(seed=0) -> Config:
    return Config(
        data=DataConfig(split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0),
        train=TrainConfig(epochs=2, batch_size=8, loss="ce", buckets=(3,), seed=seed),
        eval=EvalConfig(ks=(5,)),
    )


def test_poisoned_sequence_sets_as_members_equal_their_separate_runs(wide):
    """Member 0 (1 fake) is padded to member 1's (12 fakes) buckets: its padding batches are
    skipped steps, so it trains exactly as alone."""
    split, w, _ = wide
    small = inject_sequences(w.train, _fakes(split, n=1), split.n_users)
    big = inject_sequences(w.train, _fakes(split, "random", seed=1), split.n_users)
    cfg = _cfg()
    together = train_members([cfg, cfg], w, progress=False, trains=[small, big])
    alone = train_members([cfg], w, progress=False, trains=[small])
    assert together.training.spec.caps != alone.training.spec.caps  # padded
    a, b = together.fit.member(0), alone.fit.member(0)
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    for k, v in alone.metrics[0].items():
        assert together.metrics[0][k] == pytest.approx(v, abs=1e-5), k
    assert int(a.state.step) == int(b.state.step)  # skipped batches are no optimizer steps


def _attack_cfg(path, tmp_path, **attack) -> Config:
    settings = {
        "kinds": ("bandwagon", "transition"),
        "sizes": (3.0,),
        "seeds": 1,
        "n_targets": 2,
        "threshold": None,
        "detectors": ("repeats",),
        "degsim_k": 5,
        "trusted": 0.2,
        "selected": 3,
        **attack,
    }
    return Config(
        name="seq-attack",
        output_dir=str(tmp_path),
        data=DataConfig(dataset=str(path), split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0),
        train=TrainConfig(epochs=2, batch_size=8, loss="ce", buckets=(3,)),
        eval=EvalConfig(ks=(5,)),
        attack=AttackConfig(**settings),
        optimized=OptimizedConfig(k=3, steps=5, kappa=0.2),
    )


def test_the_attack_study_poisons_sequence_victims_end_to_end(wide, tmp_path):
    """Every (kind, defense) row of a tiny SASRec victim; a row's target HR equals a separate
    run of its poisoned set measured by hand with the ranking the study builds; the transition
    fakes raise the surrogate's own target HR; the repeats detector's figures from its definition."""
    from jaxrec.attacks.metrics import target_metrics
    from jaxrec.experiment import run_attack
    from jaxrec.experiment.optimized import members_on_targets

    split, _, path = wide
    cfg = _attack_cfg(path, tmp_path)
    res = run_attack(cfg, progress=False)
    assert len(res.rows) == 1 + 2 * 2  # clean + 2 kinds x (none, repeats)
    assert {(r["attack"], r["defense"]) for r in res.rows} == {
        ("clean", "none"),
        *((k, d) for k in ("bandwagon", "transition") for d in ("none", "repeats")),
    }
    outer = [r for r in res.extras.outer if r["attack"] == "transition"]
    assert outer[-1]["surrogate_target_hr@3"] >= outer[0]["surrogate_target_hr@3"]
    sc = res.extras.scenario
    # the transition row, again: its poisoned set trained alone, measured with members_on_targets
    from jaxrec.experiment.studies.attack_sequences import sequence_fakes

    fakes, _ = sequence_fakes(cfg, sc, MAX_LEN, lambda _: None)
    poisoned = inject_sequences(sc.rated.train, fakes["transition", 0, 3], sc.n_real)
    alone = train_members([cfg], sc.split, progress=False, trains=[poisoned])
    interacted = [sc.rated.train, sc.rated.valid, sc.rated.test]
    ranking, out = members_on_targets(alone, sc, interacted, (5,))
    want = target_metrics({k: v[0] for k, v in out.items()}, ranking)["target_hr@5"]
    row = next(r for r in res.rows if (r["attack"], r["defense"]) == ("transition", "none"))
    assert row["target_hr@5"] == pytest.approx(want, abs=1e-6)
    # the repeats detector's AUC from its definition: fakes' repeated events against the
    # untrusted real users', counted over pairs
    seqs = fakes["bandwagon", 0, 3]
    poisoned = inject_sequences(sc.rated.train, seqs, sc.n_real)
    counts = np.zeros((poisoned.n_users, poisoned.n_items))
    np.add.at(counts, (poisoned.users, poisoned.items), 1)
    present = np.r_[sc.real_users, sc.n_real + np.arange(3)]
    c = counts[present]
    suspicion = 1 - (c > 0).sum(1) / np.maximum(c.sum(1), 1)
    real = ~np.isin(present, sc.trusted) & (present < sc.n_real)
    pairs = suspicion[-3:, None] - suspicion[real][None, :]
    rep = next(r for r in res.rows if (r["attack"], r["defense"]) == ("bandwagon", "repeats"))
    assert rep["detect_auc"] == pytest.approx(np.mean((pairs > 0) + 0.5 * (pairs == 0)), abs=1e-9)
    assert {p.name for p in res.run_dir.iterdir()} >= {"report.md", "results.json", "roc_transition.png"}


def test_sequence_attack_bad_input_fails_before_any_work(wide, tmp_path):
    from jaxrec.experiment.studies.attack import check

    _, _, path = wide
    cases = [
        ({"threshold": 4.0}, "attack.threshold: 4.0 would drop events"),
        ({"kinds": ("average",)}, "attack.kinds: ['average'] attack rated profiles"),
        ({"detectors": ("rdma",)}, "attack.detectors: ['rdma'] read ratings"),
        ({"filler": 9}, "attack.filler: a fake length of 9 is above the victims' max_len 6"),
        ({"intent": "nuke"}, "attack.intent: nuke lowers ratings"),
    ]
    for attack, message in cases:
        with pytest.raises(JaxrecError, match=message.replace("[", r"\[").replace("]", r"\]")):
            check(_attack_cfg(path, tmp_path, **attack))


def test_sequence_detectors_read_event_counts_over_all_items():
    """On event counts, degsim is the mean top-k Pearson correlation of the full rows, pca the
    loadings of rows z-scored over every item, repeats the share of repeated events."""
    from jaxrec.attacks.detection import suspicion

    rng = np.random.default_rng(0)
    r = (rng.random((12, 9)) < 0.4).astype(np.float32)
    r[0, 2] = 3.0  # a user who repeats item 2 twice more
    r[r.sum(1) == 0, 0] = 1.0
    corr = np.corrcoef(r)
    np.fill_diagonal(corr, -np.inf)
    want = -np.sort(-corr, axis=1)[:, :4].mean(1)
    np.testing.assert_allclose(suspicion("degsim", r, k=4, implicit=True), want, rtol=1e-5)
    z = (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True)
    u = np.linalg.svd(z.astype(np.float64), full_matrices=False)[0]
    np.testing.assert_allclose(suspicion("pca", r, components=2, implicit=True), -(u[:, :2] ** 2).sum(1), rtol=1e-5)
    rep = suspicion("repeats", r, implicit=True)
    assert rep[0] == pytest.approx(1 - (r[0] > 0).sum() / r[0].sum()) and np.all(rep[1:] == 0)
    with pytest.raises(JaxrecError, match="the rdma detector reads ratings"):
        suspicion("rdma", r, implicit=True)
