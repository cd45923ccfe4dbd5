"""Adversarial training of sequence models (jaxrec.adversarial.windows, .substitution): APR / VAT
on the window rows, Yue et al.'s mix and Dirichlet defenses, against references written out here."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial.substitution import (
    NEIGHBOURS,
    dirichlet_weights,
    neighbour_table,
    simplex_ascent,
    substitution_positions,
)
from jaxrec.adversarial.windows import WindowAdversary, window_delta, window_objective
from jaxrec.config import AdvConfig, Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.experiment.data import load_split
from jaxrec.experiment.settings import check_train
from jaxrec.experiment.training import train_members
from jaxrec.models import SASRec
from jaxrec.train.sequence import make_position_losses, make_sequence_loss_fn
from jaxrec.train.state import init_params

P = 20  # the padding id of the tiny model (n_items)


@pytest.fixture(scope="module")
def tiny():
    """A 20-item SASRec, its params and one batch: two windows (one short) and a padding row."""
    m = SASRec(n_users=4, n_items=P, dim=8, layers=1, heads=2, max_len=6, dropout=0.0)
    params = init_params(m, jax.random.key(0))
    history = jnp.asarray([[P, P, P, 1, 2, 3], [P, 4, 5, 6, 7, 8], [P] * 6], jnp.int32)
    targets = jnp.asarray([[P, P, P, 2, 3, 9], [P, 5, 6, 7, 8, 10], [P] * 6], jnp.int32)
    neg = jax.random.randint(jax.random.key(1), (3, 6, 2), 0, P)
    items = jnp.concatenate([targets[..., None], neg], -1)
    mask = jnp.asarray([1.0, 1.0, 0.0])
    return m, params, history, items, mask


def _hp(**kw):
    return {"eps": 0.5, "reg": 1.0, "start_step": 0, "step": 1, "vat_lambda": 2.0, **kw}


_LOSS_GRADS: dict = {}


def _loss_grad(tiny, adversary, widths):
    """The jitted loss and gradient of the tiny model (``adversary`` None: the plain loss) at
    ``widths``, compiled once per (adversary, widths) for the module: the hyper-parameters (eps,
    reg, start_step, the neighbour table) are traced arguments, so every test reuses it."""
    if (adversary, widths) not in _LOSS_GRADS:
        m = tiny[0]
        objective = None if adversary is None else window_objective(m, adversary)
        fn = make_sequence_loss_fn(m, "bce", widths, objective=objective)
        _LOSS_GRADS[adversary, widths] = jax.jit(jax.value_and_grad(fn, has_aux=True))
    return _LOSS_GRADS[adversary, widths]


def _run(tiny, adversary, widths, key=2, **hp):
    m, params, history, items, mask = tiny
    return _loss_grad(tiny, adversary, widths)(params, {}, history, items, mask, jax.random.key(key), _hp(**hp))


@pytest.mark.parametrize(("method", "widths"), [("apr", (4, 6)), ("vat", (6,)), ("mix", (6,))])
def test_zero_reg_is_the_plain_loss_and_gradient(tiny, method, widths):
    """apr runs with length buckets: the batch's longest window (5) takes the width-6 branch,
    held to the plain loss without buckets."""
    (v0, _), g0 = _run(tiny, None, (6,))
    (v1, aux), g1 = _run(tiny, WindowAdversary(method, ratio=1.0), widths, reg=0.0)
    assert float(aux["adv_loss"]) > 0  # the term is computed, and weighs 0
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g0)


def test_dirichlet_before_start_is_the_plain_loss(tiny):
    table = jnp.full((P, 4), -1.0).at[:, 0].set((jnp.arange(P) + 1) % P)
    dirichlet = WindowAdversary("dirichlet")
    (v0, _), _ = _run(tiny, None, (6,))
    (v1, _), _ = _run(tiny, dirichlet, (6,), start_step=5, **{NEIGHBOURS: table})
    (v2, _), _ = _run(tiny, dirichlet, (6,), **{NEIGHBOURS: table})
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    assert abs(float(v2) - float(v0)) > 1e-4  # on: every chosen item becomes its one neighbour


def test_apr_and_vat_terms_equal_finite_difference_fgm(tiny):
    """L(rows + Δ) with Δ from a central finite-difference gradient of the clean loss with respect
    to the window rows: eps per position (APR, through the length buckets), eps x the weights of
    vat.py's formula written out per window (VAT)."""
    m, params, history, items, mask = tiny
    eps = 0.7
    key = jax.random.key(3)
    per = make_position_losses(m, "bce")
    weights = (items[..., 0] != P) * mask[:, None]
    rows = m.apply(params, history, method="embed")

    @jax.jit
    def window_losses(e):  # [B] the clean loss of each window at input rows e
        return jnp.sum(per(params, history, items, key, embedded=e) * weights, axis=1)

    h = 1e-2
    basis = jnp.eye(rows.size).reshape(-1, *rows.shape)
    central = jax.jit(jax.vmap(lambda d: jnp.sum(window_losses(rows + h * d) - window_losses(rows - h * d)) / (2 * h)))
    fd = np.asarray(central(basis), np.float64).reshape(rows.shape)
    norm = np.linalg.norm(fd, axis=-1, keepdims=True)
    unit = np.where(norm > 1e-6, fd / np.maximum(norm, 1e-12), 0.0)
    assert np.all(norm[np.asarray(history == P)] < 1e-6)  # padding positions carry no gradient
    row_loss = np.asarray(window_losses(rows))
    present = np.asarray(weights.sum(1) > 0)
    vat_w = present * 2.0 / (1 + np.exp(-(row_loss[present].mean() / (row_loss + 1e-9) - 1)))
    assert abs(vat_w[0] - vat_w[1]) > 0.05  # the two windows get different strengths
    for method, widths, strength in (
        ("apr", (4, 6), np.full((3, 1, 1), eps)),
        ("vat", (6,), eps * vat_w[:, None, None]),
    ):
        moved = rows + jnp.asarray(strength * unit * np.asarray(history < P)[..., None], jnp.float32)
        expected = float(jnp.sum(window_losses(moved))) / float(weights.sum())
        (_, aux), _ = _run(tiny, WindowAdversary(method, ratio=1.0), widths, key=3, eps=eps)
        np.testing.assert_allclose(float(aux["adv_loss"]), expected, rtol=2e-3)


def test_padding_and_mask_positions_are_never_perturbed():
    g = jax.random.normal(jax.random.key(0), (2, 5, 4))
    history = jnp.asarray([[P, P, 3, P + 1, 4], [P, 1, 2, 3, P + 1]])  # P + 1: BERT4Rec's mask token
    real = history < P
    for method, norm in (("fgm", 0.3), ("fgsm", 0.3 * 2.0)):  # fgsm: sqrt(D) x eps per row
        d = window_delta(method, g, 0.3, real)
        n = np.linalg.norm(np.asarray(d), axis=-1)
        assert np.all(n[~np.asarray(real)] == 0)
        np.testing.assert_allclose(n[np.asarray(real)], norm, rtol=1e-5)
    d = window_delta("fgm", g, {"window": jnp.asarray([[0.1], [0.4]])}, real)  # VAT: a strength per window
    n = np.linalg.norm(np.asarray(d), axis=-1)
    np.testing.assert_allclose(n[0, [2, 4]], 0.1, rtol=1e-5)
    np.testing.assert_allclose(n[1, 1:4], 0.4, rtol=1e-5)


def test_mix_ascent_stays_on_the_simplex_and_follows_the_weight_gradient():
    rng = np.random.default_rng(0)
    n, D = 7, 3
    table = jnp.asarray(rng.normal(size=(n, D)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, 4, D)), jnp.float32)
    real = jnp.asarray([[False, True, True, True], [True, True, True, True]])
    base = jnp.zeros((2, 4, D)) - 5.0
    w0 = jax.nn.one_hot(jnp.asarray([[0, 1, 2, 3], [4, 5, 6, 0]]), n) * real[..., None]

    def loss(e):
        return jnp.sum(jnp.tanh(e) * target)

    w1 = simplex_ascent(loss, w0, table, base, real, 1, 0.5)
    # reference: the gradient with respect to the weights themselves, e = w @ table at real positions
    gw = jax.grad(lambda w: loss(jnp.where(real[..., None], w @ table, base)))(w0)
    step = np.asarray(w0 + 0.5 * gw / jnp.linalg.norm(gw, axis=-1, keepdims=True))
    ref = np.maximum(step, 0)
    ref = ref / ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(w1)[np.asarray(real)], ref[np.asarray(real)], rtol=1e-5, atol=1e-6)
    w3 = np.asarray(simplex_ascent(loss, w0, table, base, real, 3, 1.0))
    assert np.all(w3 >= 0)
    np.testing.assert_allclose(w3.sum(-1)[np.asarray(real)], 1.0, rtol=1e-5)
    assert np.all(w3[~np.asarray(real)] == 0)  # padding stays empty: its input stays its own row


def test_neighbour_table_equals_brute_force():
    rng = np.random.default_rng(1)
    n, k, min_n, min_cos = 13, 3, 2, 0.5
    rows = rng.normal(size=(n, 3)).astype(np.float32)
    table = np.asarray(neighbour_table(jnp.asarray(rows), k, min_n, min_cos, chunk=5))  # 3 chunks, padded
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    for i in range(n):
        order = [j for j in np.argsort(-cos[i], kind="stable") if j != i]
        first = [j for r, j in enumerate(order) if cos[i, j] >= min_cos or r < min_n][:k]
        assert list(table[i, :k][table[i, :k] >= 0]) == first
        cands = {c for j in first for c in [x for x in table[j, :k] if x >= 0]} - {i} - set(first)
        second = sorted(cands, key=lambda c: -cos[i, c])[:k]
        assert list(table[i, k:][table[i, k:] >= 0]) == second


def test_substitution_positions_and_dirichlet_weights():
    real = jnp.asarray([[False, True, True, True, True, True], [False] * 5 + [True], [False] * 6])
    chosen = np.asarray(jax.jit(substitution_positions, static_argnums=2)(jax.random.key(0), real, 0.5))
    assert chosen.sum(1).tolist() == [2, 1, 0]  # max(1, floor(0.5 n_real)); none without real positions
    assert not np.any(chosen & ~np.asarray(real))
    ids = jnp.asarray([[3, 4, -1, 7, -1, -1]] * 500)
    c = np.asarray(jax.jit(dirichlet_weights, static_argnums=(2, 3, 4))(jax.random.key(1), ids, 3, 1.0, 0.5))
    np.testing.assert_allclose(c.sum(-1), 1.0, rtol=1e-5)
    assert np.all(c[:, [2, 4, 5]] == 0)
    # Dir(1, 1, 0.5): means 0.4, 0.4, 0.2
    np.testing.assert_allclose(c[:, [0, 1, 3]].mean(0), [0.4, 0.4, 0.2], atol=0.04)


@pytest.fixture(scope="module")
def seq_csv(tmp_path_factory):
    """40 users with 6-14 timed events over 25 items drawn from 5 taste groups."""
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp"]
    for u in range(40):
        group = u % 5
        for t in range(int(rng.integers(6, 15))):
            lines.append(f"{u},{group * 5 + int(rng.integers(0, 5))},{t}")
    path = tmp_path_factory.mktemp("seqadv") / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(path, **adv) -> Config:
    return Config(
        data=DataConfig(dataset=str(path), time_col="timestamp", split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=8, dropout=0.0),
        train=TrainConfig(epochs=4, batch_size=16, loss="bce", buckets=(), lr=0.01),
        eval=EvalConfig(ks=(5,)),
        adv=AdvConfig(**{"eps": 0.5, "relative": True, "neighbours": 3, "update_epochs": 2, **adv}),
    )


@pytest.fixture(scope="module")
def seq_split(seq_csv):
    return load_split(_cfg(seq_csv).data, sequential=True)


@pytest.mark.parametrize("method", ["apr", "vat", "mix", "dirichlet"])
def test_short_training_lowers_the_loss(seq_csv, seq_split, method):
    cfg, split = _cfg(seq_csv, method=method), seq_split
    run = train_members([cfg], split, progress=False, test=False)  # the losses only: no test ranking
    losses = [rec["loss"][0] for rec in run.fit.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    if method == "dirichlet":  # the table was built inside the epoch, from the trained rows
        table = np.asarray(run.fit.state.hparams[NEIGHBOURS])[0]
        assert table.shape == (split.n_items, 6) and np.all(table[:, :2] >= 0)


@pytest.mark.parametrize(
    ("model", "adv", "says"),
    [
        ("mf", {"method": "mix"}, "adv.method: mix"),
        ("mf", {"method": "dirichlet"}, "adv.method: dirichlet"),
        ("sasrec", {"method": "apr", "perturb_at": "final"}, "adv.perturb_at"),
    ],
)
def test_bad_adv_settings_are_one_keyed_line(seq_csv, model, adv, says):
    cfg = _cfg(seq_csv, **adv)
    if model == "mf":
        cfg = dataclasses.replace(
            cfg, model=ModelConfig(name="mf"), train=TrainConfig(loss="bpr"), data=DataConfig(dataset=str(seq_csv))
        )
    with pytest.raises(JaxrecError, match=says):
        check_train(cfg)
