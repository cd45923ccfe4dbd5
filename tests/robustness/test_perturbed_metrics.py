"""Metrics under perturbation: many strengths in one vmapped program."""

from __future__ import annotations

import jax
import numpy as np

from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.evaluate import evaluate, split_ranking
from jaxrec.experiment import train_members
from jaxrec.models.base import embedding_tables
from jaxrec.robustness import perturb
from jaxrec.robustness.sweep import adversary_gradients, perturbed_metrics


def test_strengths_in_one_program_equal_one_by_one_and_fgm_hurts_most(tiny_split):
    cfg = Config(model=ModelConfig(dim=8), eval=EvalConfig(ks=(5,)), train=TrainConfig(epochs=8, batch_size=16, lr=0.05))
    out = train_members([cfg], tiny_split, progress=False)
    model, inputs, data = out.training.model, out.training.inputs, out.training.data
    params = out.fit.member(0).best_params
    test = split_ranking(tiny_split, "test")
    eps = [0.0, 0.3, 1.0]
    fgm = perturbed_metrics(model, params, inputs, data, test, eps, (5,), "fgm")
    rnd = perturbed_metrics(model, params, inputs, data, test, eps, (5,), "random")
    clean = evaluate(model, {**params, **inputs}, test, (5,))
    assert abs(fgm[0]["ndcg@5"] - clean["ndcg@5"]) < 1e-6 and abs(rnd[0]["ndcg@5"] - clean["ndcg@5"]) < 1e-6
    # each vmapped strength equals perturbing and evaluating that strength alone
    grads = adversary_gradients(model, params, inputs, data, jax.random.fold_in(jax.random.key(0), 0))
    for e, got in zip(eps, fgm):
        alone = evaluate(model, {**perturb.apply(params, perturb.fgm(embedding_tables(params), grads, e)), **inputs},
                         test, (5,))
        np.testing.assert_allclose(got["ndcg@5"], alone["ndcg@5"], atol=1e-5)
    assert fgm[2]["ndcg@5"] < min(clean["ndcg@5"], rnd[2]["ndcg@5"])  # the adversarial direction hurts most
