"""``jaxrec.register_model``: a user's own flax module, defined here outside the package, through
``jaxrec.run``, a sweep's members, ``load_run`` / ``recommend`` and ``jaxrec robustness``."""

from __future__ import annotations

import json
import re

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rated_csv_file

import jaxrec
from jaxrec.cli import main
from jaxrec.models import MODELS
from jaxrec.models.base import EMBEDDINGS, EmbeddingTables


class BiasMF(nn.Module):
    """A user's model on the Recommender contract: MF plus a learned item bias."""

    n_users: int
    n_items: int
    dim: int = 8  # model.dim reaches it; a field that is no model.* key keeps its default

    def setup(self):
        shapes = (("user", self.n_users, self.dim), ("item", self.n_items, self.dim))
        self.tables = EmbeddingTables(shapes, name=EMBEDDINGS)  # params["params"]["embeddings"]
        self.bias = self.param("item_bias", nn.initializers.zeros, (self.n_items,))

    def embeddings(self, train: bool = False):
        return {**self.tables(), "bias": self.bias}

    def score(self, users, items, cache=None, train: bool = False):
        c = self.embeddings(train) if cache is None else cache
        return jnp.einsum("bd,b...d->b...", c["user"][users], c["item"][items]) + c["bias"][items]

    def score_all(self, users, cache=None):
        c = self.embeddings() if cache is None else cache
        return c["user"][users] @ c["item"].T + c["bias"]

    def __call__(self, users, items, train: bool = False):
        return self.score(users, items, train=train)


@pytest.fixture(scope="module")
def registered():
    jaxrec.register_model("biasmf", BiasMF)
    yield "biasmf"
    MODELS.pop("biasmf")  # the registry lives in the process: leave it as the other tests expect it


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return jaxrec.DataConfig(dataset=str(rated_csv_file(tmp_path_factory.mktemp("data"))), rating_col="rating")


def _cfg(data, out, seed=0) -> jaxrec.Config:
    return jaxrec.Config(
        name=f"mine{seed}",
        output_dir=str(out),
        data=data,
        model=jaxrec.ModelConfig(name="biasmf", dim=4),
        train=jaxrec.TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=seed),
        eval=jaxrec.EvalConfig(ks=(5, 10)),
    )


def test_runs_sweep_members_reload_and_recommend(registered, data, tmp_path):
    split = jaxrec.load_split(data)
    alone = [jaxrec.run(_cfg(data, tmp_path, s), split=split, progress=False, write=s == 0) for s in (0, 1)]
    assert isinstance(alone[0].model, BiasMF) and alone[0].model.dim == 4
    assert alone[0].params["params"]["item_bias"].shape == (split.n_items,)
    # two members of one program, each equal to its separate run: metrics and parameters
    res = jaxrec.sweep(_cfg(data, tmp_path), {"train.seed": [0, 1]}, split=split, progress=False, write=False)
    assert res.timing["members"] == 2 and res.timing["programs"] == 1
    for m, one in enumerate(alone):
        for k, v in one.metrics.items():
            if k.split("@")[0] in ("recall", "ndcg", "hit", "mrr", "precision"):
                assert res.rows[m][k] == pytest.approx(v, abs=1e-6), (m, k)
        best = res.extras.groups[0].fit.member(m).best_params
        for a, b in zip(*(np.asarray(x) for x in (best["params"]["item_bias"], one.params["params"]["item_bias"]))):
            assert a == pytest.approx(b, abs=1e-5)
        np.testing.assert_allclose(
            best["params"][EMBEDDINGS]["user"], one.params["params"][EMBEDDINGS]["user"], atol=1e-5
        )
    # reloaded from its run directory: recommendations are the model's own top scores
    model = jaxrec.load_run(alone[0].run_dir)
    user = model.user_ids[0]
    recs = model.recommend([user], k=5)
    p = alone[0].params["params"]
    scores = np.array(p[EMBEDDINGS]["user"][0] @ p[EMBEDDINGS]["item"].T + p["item_bias"])
    seen = np.concatenate([part.items[part.users == 0] for part in (split.train, split.valid, split.test)])
    scores[seen] = -np.inf
    assert list(recs.items[0]) == list(model.item_ids[np.argsort(-scores, kind="stable")[:5]])
    assert model.evaluate()["recall@10"] == pytest.approx(alone[0].metrics["recall@10"], abs=1e-6)


def test_jaxrec_robustness_attacks_a_model_a_module_registers(registered, data, tmp_path, monkeypatch, capsys):
    """``jaxrec --import MODULE robustness``: the module registers the model for the command."""
    (tmp_path / "usermodels.py").write_text(
        "import jaxrec\nfrom test_register_model import BiasMF\njaxrec.register_model('biasmf-cli', BiasMF)\n"
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study.yaml").write_text(
        f"name: study\noutput_dir: {tmp_path / 'runs'}\n"
        f"data: {{dataset: {data.dataset}, rating_col: rating}}\neval: {{ks: [5, 10]}}\n"
        "model: {name: biasmf-cli, dim: 4}\ntrain: {epochs: 2, batch_size: 64, lr: 0.05}\n"
        "robustness: {methods: [fgm], eps: [0.0, 1.0], worst_users: 0, plot_metric: ndcg@10}\n"
    )
    try:
        assert main(["--import", "usermodels", "robustness", "-q", "-c", "study.yaml"]) == 0
    finally:
        MODELS.pop("biasmf-cli", None)
    rows = json.loads((tmp_path / "runs" / "study" / "results.json").read_text())["rows"]
    clean = next(r for r in rows if r["method"] == "none")
    fgm = {r["eps"]: r for r in rows if r["method"] == "fgm"}
    assert fgm[0.0]["ndcg@10"] == pytest.approx(clean["ndcg@10"], abs=1e-6)
    # the adversary raises the training loss it maximises, and the top-10 lists move
    assert fgm[1.0]["adv_loss"] > fgm[0.0]["adv_loss"] and fgm[1.0]["jaccard@10"] < 1.0 == fgm[0.0]["jaccard@10"]
    capsys.readouterr()
    assert main(["--import", "no_such_module_here", "robustness", "-q", "-c", "study.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: --import no_such_module_here: No module named")


def test_registration_and_validation_mistakes_are_one_clear_error(registered):
    with pytest.raises(jaxrec.JaxrecError, match=r"register_model: 'biasmf' is already a model \(.*BiasMF\)"):
        jaxrec.register_model("biasmf", BiasMF)
    with pytest.raises(jaxrec.JaxrecError, match=r"register_model: 'mf' is already a model"):
        jaxrec.register_model("mf", BiasMF)

    class NoScoreAll(nn.Module):
        n_users: int
        n_items: int

        def embeddings(self, train=False):
            return {}

        def score(self, users, items, cache=None, train=False):
            return items

    with pytest.raises(jaxrec.JaxrecError, match=r"lacks the Recommender contract's __call__, score_all"):
        jaxrec.register_model("broken", NoScoreAll)
    with pytest.raises(jaxrec.JaxrecError, match="not a flax.linen.Module class"):
        jaxrec.register_model("plain", object)
    with pytest.raises(jaxrec.JaxrecError, match="the name must be"):
        jaxrec.register_model("a b", BiasMF)
    assert "broken" not in MODELS and "plain" not in MODELS
    assert jaxrec.ModelConfig(name="biasmf").name == "biasmf"  # read from the registry when checked
    names = list(MODELS)
    with pytest.raises(jaxrec.JaxrecError, match=re.escape(f"model.name must be one of {names!r}, got 'svd'")):
        jaxrec.ModelConfig(name="svd")


def test_the_contracts_are_protocols_a_user_model_meets():
    from jaxrec.models.contracts import RECOMMENDER_METHODS, SEQUENCE_METHODS

    assert isinstance(BiasMF(3, 4), jaxrec.Recommender) and not isinstance(BiasMF(3, 4), jaxrec.SequenceRecommender)
    assert isinstance(MODELS["sasrec"](3, 4), jaxrec.SequenceRecommender)
    for proto, names in ((jaxrec.Recommender, RECOMMENDER_METHODS), (jaxrec.SequenceRecommender, SEQUENCE_METHODS)):
        own = {n for n, v in vars(proto).items() if callable(v) and (n == "__call__" or not n.startswith("_"))}
        assert own - {"apply"} == set(names)
