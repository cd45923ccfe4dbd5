"""Sequence models: causality, padding invariance, narrow windows, one block against numpy, and
the fused attention against the einsum path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.models import HSTU, BERT4Rec, SASRec
from jaxrec.models.attention import TransformerBlock, attention_mask, softmax_attention
from jaxrec.train.state import init_params

N_ITEMS, L = 20, 6
KW = dict(n_users=5, n_items=N_ITEMS, dim=8, layers=2, heads=2, max_len=L, dropout=0.0)


def _model(cls, **kw):
    m = cls(**{**KW, **kw})
    return m, init_params(m, jax.random.key(0))


def _hist(rows):
    return jnp.asarray(rows, jnp.int32)


H = _hist([[N_ITEMS, N_ITEMS, 3, 7, 1, 4], [2, 5, 9, 11, 0, 6]])


@pytest.mark.parametrize("cls", [SASRec, HSTU])
def test_causal_models_never_read_the_future(cls):
    m, p = _model(cls)
    out = m.apply(p, H, method="hidden")
    later = H.at[:, 4:].set(jnp.asarray([[12, 13], [14, 15]]))
    out2 = m.apply(p, later, method="hidden")
    np.testing.assert_allclose(out[:, :4], out2[:, :4], rtol=1e-6, atol=1e-6)
    assert not np.allclose(out[:, 4:], out2[:, 4:])


def test_bert4rec_reads_both_sides():
    m, p = _model(BERT4Rec)
    out = m.apply(p, H, method="hidden")
    out2 = m.apply(p, H.at[:, 5].set(12), method="hidden")
    assert not np.allclose(out[:, 3], out2[:, 3])


@pytest.mark.parametrize("cls", [SASRec, HSTU, BERT4Rec])
def test_padding_changes_nothing(cls):
    m, p = _model(cls)
    base = m.apply(p, H, method="hidden")
    emb = m.apply(p, H, method="embed")
    junk = jax.random.normal(jax.random.key(1), emb.shape)
    padded = (H == N_ITEMS)[..., None]
    out = m.apply(p, jnp.where(padded, junk, emb), H, method="encode")  # anything at padded slots
    real = ~np.asarray(padded[..., 0])
    np.testing.assert_allclose(np.asarray(out)[real], np.asarray(base)[real], rtol=1e-6, atol=1e-6)
    # the padding row of the table is never read either
    tables = p["params"]["embeddings"]
    p2 = {"params": {**p["params"], "embeddings": {**tables, "item": tables["item"].at[N_ITEMS].set(5.0)}}}
    np.testing.assert_allclose(m.apply(p2, H, method="score_all"), m.apply(p, H, method="score_all"), rtol=1e-6)


@pytest.mark.parametrize("cls", [SASRec, HSTU])
def test_a_narrow_window_computes_what_the_full_one_does(cls):
    m, p = _model(cls)
    short = _hist([[N_ITEMS, N_ITEMS, N_ITEMS, 3, 7, 1]])
    full = m.apply(p, short, method="hidden")
    narrow = m.apply(p, short[:, -3:], method="hidden")
    np.testing.assert_allclose(full[:, -3:], narrow, rtol=1e-5, atol=1e-6)


def _layer_norm(x, scale, bias, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * scale + bias


def test_one_pre_norm_block_against_numpy():
    B, T, D, NH = 2, 5, 8, 2
    block = TransformerBlock(D, NH, 16, 0.0, 0.0, "relu", "pre")
    x = np.asarray(jax.random.normal(jax.random.key(0), (B, T, D)))
    valid = np.array([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    mask = attention_mask(jnp.asarray(valid), causal=True)
    p = block.init(jax.random.key(1), x, mask)["params"]
    got = np.asarray(block.apply({"params": p}, x, mask))
    P = jax.tree.map(np.asarray, p)
    dense = lambda h, w: h @ w["kernel"] + w["bias"]  # noqa: E731
    q_in = _layer_norm(x, P["attention_norm"]["scale"], P["attention_norm"]["bias"], 1e-8)
    a = P["SelfAttention_0"]
    q = dense(q_in, a["query"]).reshape(B, T, NH, D // NH)
    k = (x @ a["key"]["kernel"]).reshape(B, T, NH, D // NH)
    v = dense(x, a["value"]).reshape(B, T, NH, D // NH)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(D // NH)
    allowed = np.asarray(mask)
    logits = np.where(allowed, logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    att = dense(np.einsum("bnts,bsnh->btnh", w, v).reshape(B, T, D), a["out"])
    h = q_in + att
    f = P["FeedForward_0"]
    ff_in = _layer_norm(h, P["ffn_norm"]["scale"], P["ffn_norm"]["bias"], 1e-8)
    want = ff_in + dense(np.maximum(dense(ff_in, f["Dense_0"]), 0.0), f["Dense_1"])  # the SASRec code's residual
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_einsum_attention_equals_the_fused_one():
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 5, 2, 4)) for i in range(3))
    mask = attention_mask(jnp.asarray([[False, True, True, True, True]] * 2), causal=True)
    fused = softmax_attention(q, k, v, mask)
    manual = softmax_attention(q, k, v, mask, dropout_rng=jax.random.key(3), rate=1e-9)  # keeps all
    np.testing.assert_allclose(fused, manual, rtol=1e-5, atol=1e-6)


def test_score_all_is_the_last_position_against_the_output_table():
    m, p = _model(SASRec, tied=False)
    h = m.apply(p, H, method="hidden")[:, -1]
    table = p["params"]["embeddings"]["item_out"]
    np.testing.assert_allclose(m.apply(p, H, method="score_all"), h @ table.T, rtol=1e-5, atol=1e-6)
    assert m.apply(p, H, method="score_all").shape == (2, N_ITEMS)
