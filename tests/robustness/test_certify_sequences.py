"""PORE's certificate with sequence bases: the Markov-chain base's votes against a loop, SASRec
sub-models as members against each trained alone, every injection of e fake sequences on a tiny
case never breaking the certified r, and the study with its bad input."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import top_by_probability

from jaxrec.config import CertifyConfig, Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from jaxrec.data.sequences import ordered_items
from jaxrec.errors import JaxrecError
from jaxrec.experiment.data import load_split
from jaxrec.models import markov
from jaxrec.robustness import bagging, certificate
from jaxrec.robustness.certificate import certified_counts

MAX_LEN, N_ITEMS = 6, 15


@pytest.fixture(scope="module")
def seq_split(tmp_path_factory):
    rng = np.random.default_rng(11)
    lines = ["user_id,item_id,timestamp"]
    for u in range(24):
        start = int(rng.integers(0, N_ITEMS))
        for t in range(int(rng.integers(4, 10))):  # mostly walks i -> i + 1: a chain has signal
            item = (start + t) % N_ITEMS if rng.random() < 0.7 else int(rng.integers(0, N_ITEMS))
            lines.append(f"{u},{item},{t}")
    path = tmp_path_factory.mktemp("c") / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_split(DataConfig(dataset=str(path), split="leave_one_out"), sequential=True), path


def _chain_votes_by_hand(split, subsets, order, decay, n_votes):
    """The Markov-chain bases' votes, each base counted and scored in numpy."""
    indptr, items = ordered_items([split.train], "time")
    q_ptr, q_items = ordered_items([split.train, split.valid], "time")
    seen = bagging.pairs_mask(split)
    votes = np.zeros((split.n_users, split.n_items), np.int64)
    for users in subsets:
        if users[0] < 0:
            continue
        c = np.zeros((split.n_items, split.n_items))
        for u in users:
            seq = items[indptr[u] : indptr[u + 1]]
            for a, b in zip(seq[:-1], seq[1:]):
                c[a, b] += 1
        for u in users:
            hist = q_items[q_ptr[u] : q_ptr[u + 1]][::-1][:order]
            s = sum(decay**p * c[i] / (c[i].sum() + 1.0) for p, i in enumerate(hist))
            s = np.where(seen[u], -np.inf, s)
            votes[u, np.argsort(-s, kind="stable")[:n_votes]] += 1
    return votes


def test_chain_base_votes_equal_a_loop_over_the_bases(seq_split):
    split, _ = seq_split
    subsets = np.vstack([bagging.draw_subsets(split.n_users, 6, 5, seed=2), np.full((1, 6), -1, np.int32)])
    indptr, items = ordered_items([split.train], "time")
    src, dst = markov.user_transitions(indptr, items, split.n_items)
    q_ptr, q_items = ordered_items([split.train, split.valid], "time")
    ctx = markov.contexts(q_ptr, q_items, np.arange(split.n_users), 2, split.n_items)
    seen = jnp.asarray(bagging.pairs_mask(split))
    zero = jnp.zeros((split.n_users, split.n_items), jnp.int32)
    votes = bagging.transition_votes(
        zero, jnp.asarray(src), jnp.asarray(dst), jnp.asarray(ctx), seen, jnp.asarray(subsets), 2
    )
    np.testing.assert_array_equal(np.asarray(votes), _chain_votes_by_hand(split, subsets, 2, 0.5, 2))
    assert int(votes.sum()) == 5 * 6 * 2  # the padding base voted for nothing


def _cfg(tmp_path, path, **certify) -> Config:
    settings = {"bases": ("transition", "model"), "sub_models": 6, "subsample": 8, "top_n": 3, "votes": 2}
    return Config(
        name="cert-seq",
        output_dir=str(tmp_path),
        data=DataConfig(dataset=str(path), split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=MAX_LEN, dropout=0.0),
        train=TrainConfig(epochs=2, batch_size=8, loss="ce", buckets=(3,)),
        eval=EvalConfig(ks=(3,)),
        certify=CertifyConfig(**{**settings, "chunk": 4, "max_fakes": 2, "targets": 2, **certify}),
    )


def test_sasrec_sub_models_as_members_vote_like_each_trained_alone(seq_split, tmp_path):
    """Chunks of 4 (the last with 2 real bases), one shape for every chunk: the votes equal
    each sub-model trained alone in that shape and scoring its users' history windows."""
    from jaxrec.data.sequences import histories
    from jaxrec.experiment import certified
    from jaxrec.experiment.training import train_members

    split, path = seq_split
    cfg = _cfg(tmp_path, path)
    ens = certified.ensemble(cfg, split, "model")
    shape, queries = certified._capacity(cfg, split, split.train)
    np.testing.assert_array_equal(np.asarray(queries), histories([split.train, split.valid], "time", MAX_LEN))
    seen = jnp.asarray(bagging.pairs_mask(split))
    loop = jnp.zeros((split.n_users, split.n_items), jnp.int32)
    for k, subsets, real in certified._chunks(cfg, split.n_users):
        for m in range(real):
            one = Config(**{**cfg.__dict__, "train": TrainConfig(**{**cfg.train.__dict__, "seed": k * 4 + m})})
            train = split.train.select(np.isin(split.train.users, subsets[m]))
            run = train_members([one], split, progress=False, trains=[train], capacity=shape, test=False)
            tr = run.training
            loop = bagging.model_votes(
                loop, tr.model, run.fit.best, tr.inputs, seen, jnp.asarray(subsets[m : m + 1]), 2, False, queries
            )
    np.testing.assert_array_equal(ens.votes, np.asarray(loop))
    assert ens.traces == 1  # every chunk ran one compiled program


# ------------------------------------------------------------------------------------------------
# brute force: every way to inject e fake sequences into a tiny data set


def _chain_top1(seqs: list, sample: tuple, n_real: int, unseen: np.ndarray) -> dict:
    """The order-1 chain counted over ``sample``'s sequences (fakes included): each sampled real
    user's best unseen item after its last item (ties: the lower id)."""
    m = unseen.shape[1]
    c = np.zeros((m, m))
    for u in sample:
        for a, b in zip(seqs[u][:-1], seqs[u][1:]):
            c[a, b] += 1
    out = {}
    for u in sample:
        if u < n_real:
            last = seqs[u][-1]
            s = np.where(unseen[u], c[last] / (c[last].sum() + 1.0), -np.inf)
            out[u] = int(np.argmax(s))
    return out


def _probabilities(seqs: list, n_real: int, s: int, unseen) -> np.ndarray:
    p = np.zeros(unseen.shape)
    samples = list(itertools.combinations(range(len(seqs)), s))
    for sample in samples:
        for u, i in _chain_top1(seqs, sample, n_real, unseen).items():
            p[u, i] += 1
    return p / len(samples)


def test_no_injection_of_e_fake_sequences_breaks_the_certified_r(monkeypatch):
    """Every fake sequence of 2 or 3 events (e = 1) and every pair of 2-event fakes (e = 2) on
    6 real users, 5 items, s = 2, with exact vote probabilities (no sampling error)."""
    real = [np.array(x) for x in ([0, 1, 2], [1, 2, 3], [2, 3], [3, 4, 0], [0, 1], [4, 0])]
    n, m, s, top_n = len(real), 5, 2, 2
    unseen = np.ones((n, m), bool)
    for u, seq in enumerate(real):
        unseen[u, seq] = False
    p = _probabilities(real, n, s, unseen)
    relevant = top_by_probability(p, unseen, top_n)  # certify the clean ensemble's own top-N
    fakes = np.array([1, 2])
    r = certified_counts(p, p, relevant, top_n, 1, n, s, fakes, candidates=unseen)
    assert r.sum() > 0
    worst = np.full((n, fakes.size), top_n)  # the fewest relevant items kept by any injection
    injections = [
        [[np.array(x)] for k in (2, 3) for x in itertools.product(range(m), repeat=k)],
        [
            [np.array(a), np.array(b)]
            for a, b in itertools.combinations_with_replacement(itertools.product(range(m), repeat=2), 2)
        ],
    ]
    for k, chosen in enumerate(injections):
        for added in chosen:
            probabilities = _probabilities(real + added, n, s, unseen)
            worst[:, k] = np.minimum(worst[:, k], (top_by_probability(probabilities, unseen, top_n) & relevant).sum(1))
    assert np.all(worst >= r), (worst, r)
    # teeth: the injections do move the top-N, and a bound that ignores how far fakes reach
    # (delta = 0: a fake changes no vote probability) is broken
    assert np.any(worst < top_n)
    full = certificate.rho_delta
    monkeypatch.setattr(certificate, "rho_delta", lambda n, s, e: (full(n, s, e)[0], 0 * full(n, s, e)[1]))
    assert np.any(worst < certified_counts(p, p, relevant, top_n, 1, n, s, fakes, candidates=unseen))


def test_the_study_certifies_sequence_bases_and_refuses_bad_input(seq_split, tmp_path):
    from jaxrec.experiment.studies import certify, run_study

    split, path = seq_split
    cfg = _cfg(tmp_path, path, bases=("transition",), sub_models=200, subsample=8, max_fakes=2, alpha=0.5)
    result = run_study("certify", cfg, progress=False)
    rows = {(r["base"], r["fakes"]): r for r in result.rows}
    p = [rows["transition", e]["certified_precision@3"] for e in range(3)]
    assert p[0] > 0 and p[0] >= p[1] >= p[2], p
    assert (result.run_dir / "report.md").is_file()
    with pytest.raises(JaxrecError, match="certify.bases: .*leave_one_out"):
        certify.check(Config(**{**cfg.__dict__, "data": DataConfig(dataset=str(path), split="random")}))


def test_the_ablation_base_certifies_against_pollution_in_the_study(seq_split, tmp_path):
    """The study's curve equals the certificate recomputed from a separate training of the same
    base and the library's votes; bad ablation settings fail first, one keyed line each."""
    import jax

    from jaxrec.evaluate import split_ranking
    from jaxrec.experiment.studies import certify, run_study
    from jaxrec.experiment.training import train_members
    from jaxrec.robustness.ablation import Ablation, ablation_votes, real_lengths, sequence_scorer
    from jaxrec.robustness.ablation_certificate import certified_curve, certify_ablation

    split, path = seq_split
    settings = {"bases": ("ablation",), "ablation_keep": 2, "ablation_last": 4, "ablation_votes": 60}
    cfg = _cfg(tmp_path, path, **settings, max_radius=2, alpha=0.2)
    result = run_study("certify", cfg, progress=False)
    rows = result.extras.ablation
    assert [r["radius"] for r in rows] == [0, 1, 2]
    hits = [r["certified_hit@3"] for r in rows]
    assert hits[0] >= hits[1] >= hits[2]
    run = train_members([cfg], split, progress=False)
    params = {**jax.tree.map(lambda a: a[0], run.fit.best), **run.training.inputs}
    data = split_ranking(split, "test", max_len=MAX_LEN, mask_history=False)
    mask = np.asarray(data.mask).reshape(-1)
    windows = np.asarray(data.queries).reshape(mask.size, -1)[mask]
    users = np.asarray(data.users).reshape(-1)[mask]
    held = np.asarray(data.targets)[..., 0].reshape(-1)[mask]
    spec = Ablation(keep=2, last=4, votes=60, n_votes=2)
    counts = ablation_votes(
        sequence_scorer(run.training.model), params, windows, users, jax.random.key(0), spec, n_items=split.n_items
    )
    cert = certify_ablation(
        counts, 60, real_lengths(windows, split.n_items), keep=2, last=4, top_n=3, alpha=0.2, max_radius=2, held=held
    )
    np.testing.assert_allclose(hits, certified_curve(cert.held_rank, 3)["hit@3"], atol=1e-12)
    assert (result.run_dir / "ablation_certified_hit@3.png").is_file()
    cases = [
        ({"ablation_keep": 4}, "certify.ablation_keep: m=4 must be between 1 and ablation_last - 1"),
        ({"ablation_last": 9}, "certify.ablation_last: n=9 is more than the model's max_len 6"),
    ]
    for bad, message in cases:
        with pytest.raises(JaxrecError, match=message):
            certify.check(_cfg(tmp_path, path, **{**settings, **bad}))
    mf = Config(**{**cfg.__dict__, "model": ModelConfig(name="mf", dim=8)})
    with pytest.raises(JaxrecError, match="certify.bases: ablation smooths a sequence model's history, and mf"):
        certify.check(mf)
