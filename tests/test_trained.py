"""A run keeps its model: ``load_run`` re-evaluates to the stored metrics bit for bit, recommends
for raw ids what a brute-force numpy ranking of its exported embeddings gives, and every misuse
is one keyed line; ``jaxrec recommend`` / ``export`` write what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxrec.cli import main
from jaxrec.errors import JaxrecError
from jaxrec.experiment.trained import load_run


def _write(path, rows, header):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Events with string raw ids (``u7``, ``i3``) and timestamps."""
    rng = np.random.default_rng(3)
    rows = [
        f"u{u},i{int(i)},{t}"
        for u in range(24)
        for t, i in enumerate(rng.choice(30, int(rng.integers(5, 12)), replace=False))
    ]
    return _write(tmp_path_factory.mktemp("d") / "events.csv", rows, "user_id,item_id,timestamp")


def _train(data, out, name, *sets):
    base = [
        f"data.dataset={data}",
        "data.time_col=timestamp",
        "data.ratios=[0.7,0.1,0.2]",
        "model.dim=8",
        "train.epochs=2",
        "train.batch_size=32",
        "eval.ks=[3,5]",
        f"output_dir={out}",
        f"name={name}",
    ]
    args = ["train", "--quiet"]
    for s in [*base, *sets]:
        args += ["--set", s]
    assert main(args) == 0
    return out / name


SEQ = ("model.name=sasrec", "data.split=leave_one_out", "model.max_len=6", "model.layers=1", "train.loss=bce")
SEQ += ("train.buckets=[]",)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {
        "mf": _train(data, out, "mf"),
        "lightgcn": _train(data, out, "lightgcn", "model.name=lightgcn", "model.layers=2"),
        "sasrec": _train(data, out, "sasrec", *SEQ),
        "early": _train(data, out, "early", "train.epochs=6", "train.eval_every=1", "train.patience=1"),
    }


@pytest.mark.parametrize("name", ["mf", "lightgcn", "sasrec", "early"])
def test_a_reloaded_run_re_evaluates_to_its_stored_metrics_bit_for_bit(runs, name):
    stored = json.loads((runs[name] / "metrics.json").read_text())
    model = load_run(runs[name])
    got = model.evaluate()
    assert got and all(got[k] == stored[k] for k in got), {k: (got[k], stored[k]) for k in got}
    assert model.meta["epoch"] == stored["best_epoch"]


def _brute_force_top(model, users, k, parts):
    """numpy: scores = user embeddings . item embeddings, the users' items of ``parts`` masked."""
    scores = model.user_embeddings() @ model.item_embeddings().T
    out = []
    for u in users:
        i = model._lookup("user", [u])[0]
        s = scores[i].astype(np.float64)
        for p in parts:
            s[p.items[p.users == i]] = -np.inf
        out.append(model.item_ids[np.argsort(-s, kind="stable")[:k]])
    return np.stack(out)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "sasrec"])
def test_recommendations_are_the_brute_force_top_k_of_the_exported_embeddings(runs, name):
    model = load_run(runs[name])
    users = ["u3", "u0", "u17"]
    s = model.split
    seen = [p for p in (s.train, s.valid, s.test) if p is not None]
    rec = model.recommend(users, k=5)
    assert rec.users.tolist() == users and rec.items.dtype.kind == "U"
    np.testing.assert_array_equal(rec.items, _brute_force_top(model, users, 5, seen))
    assert not any(
        set(items) & set(model.item_ids[p.items[p.users == model._lookup("user", [u])[0]]])
        for u, items in zip(users, rec.items)
        for p in seen
    )
    only_train = model.recommend(users, k=5, exclude="train")
    np.testing.assert_array_equal(only_train.items, _brute_force_top(model, users, 5, [s.train]))
    # scores: the model's own, for any items
    np.testing.assert_allclose(model.score(users, rec.items[0]).diagonal()[:1], rec.scores[0, :1], rtol=1e-6)
    np.testing.assert_allclose(model.score(["u3"], rec.items[0])[0], rec.scores[0], rtol=1e-6)


def test_all_users_in_chunks_equal_one_chunk(runs):
    model = load_run(runs["lightgcn"])
    whole = model.recommend(k=4)
    model.chunk = 5  # 24 users in chunks of 5: the last one padded
    chunked = list(model.recommend_chunks(k=4))
    assert len(chunked) == 5
    np.testing.assert_array_equal(np.concatenate([c.items for c in chunked]), whole.items)
    assert whole.users.tolist() == model.user_ids.tolist()


def test_a_sequence_model_recommends_from_a_given_history(runs):
    model = load_run(runs["sasrec"])
    s = model.split
    u = model._lookup("user", ["u5"])[0]
    items = np.concatenate([p.items[p.users == u] for p in (s.train, s.valid, s.test) if p is not None])
    history = model.item_ids[items].tolist()  # the user's events in file order (= time order here)
    got = model.recommend(history=[history], k=5)
    want = model.recommend(["u5"], k=5)
    np.testing.assert_array_equal(got.items, want.items)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_misuse_is_one_keyed_line(runs, tmp_path):
    model = load_run(runs["mf"])
    with pytest.raises(JaxrecError, match=r"users: u999 not among the 24 users"):
        model.recommend(["u1", "u999"])
    with pytest.raises(JaxrecError, match=r"k: must be an integer in \[1, "):
        model.recommend(["u1"], k=0)
    with pytest.raises(JaxrecError, match="exclude: 'all' is not one of"):
        model.recommend(["u1"], exclude="all")
    with pytest.raises(JaxrecError, match="history: mf scores user ids"):
        model.recommend(history=[["i1"]])
    with pytest.raises(JaxrecError, match="no saved model"):
        load_run(tmp_path)
    with pytest.raises(JaxrecError, match="no such run directory"):
        load_run(tmp_path / "nope")
    meta = json.loads((runs["mf"] / "model" / "model.json").read_text())
    old = tmp_path / "old"
    import shutil

    shutil.copytree(runs["mf"], old)
    (old / "model" / "model.json").write_text(json.dumps({**meta, "format": 0}))
    with pytest.raises(JaxrecError, match="saved in model format 0"):
        load_run(old)


def test_recommend_json_is_one_document_on_stdout(runs, capsys):
    assert main(["recommend", str(runs["mf"]), "--users", "u3,u0", "--k", "3", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # the whole of stdout
    want = load_run(runs["mf"]).recommend(["u3", "u0"], k=3).to_dict()
    assert doc == want and list(doc) == ["u3", "u0"] and "users' top-3" in err


def test_recommend_streams_every_user_to_csv_and_parquet(runs, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    want = load_run(runs["lightgcn"]).recommend(k=3)
    assert main(["recommend", str(runs["lightgcn"]), "--k", "3", "--out", str(tmp_path / "r.csv")]) == 0
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "user,rank,item,score" and len(lines) == 1 + 3 * len(want.items)
    assert lines[1].split(",")[:3] == [str(want.users[0]), "1", str(want.items[0, 0])]
    assert main(["recommend", str(runs["lightgcn"]), "--k", "3", "--out", str(tmp_path / "r.parquet")]) == 0
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert table["item"] == want.items.reshape(-1).tolist()


def test_recommend_refuses_unknown_users_before_writing(runs, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["recommend", str(runs["mf"]), "--users", "u1,nobody", "--out", str(out)]) == 2
    assert "users: nobody not among" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name", ["mf", "sasrec"])
def test_exported_embeddings_score_by_their_dot_product(runs, tmp_path, name):
    path = tmp_path / "e.npz"
    assert main(["export", str(runs[name]), "--embeddings", str(path)]) == 0
    with np.load(path, allow_pickle=False) as f:  # no object arrays
        e = {k: f[k] for k in f.files}
    model = load_run(runs[name])
    assert e["user_ids"].dtype.kind == "U" and bool(e["dot_product"])
    users = e["user_ids"][:4].tolist()
    np.testing.assert_allclose(
        e["user_embeddings"][:4] @ e["item_embeddings"].T, model.score(users, e["item_ids"]), rtol=1e-5, atol=1e-6
    )


def test_parquet_embeddings_hold_the_same_vectors(runs, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["export", str(runs["mf"]), "--embeddings", str(tmp_path / "e.parquet")]) == 0
    t = pq.read_table(tmp_path / "e.parquet")
    model = load_run(runs["mf"])
    users = [
        np.asarray(v, np.float32) for k, v in zip(t["kind"].to_pylist(), t["embedding"].to_pylist()) if k == "user"
    ]
    np.testing.assert_array_equal(np.stack(users), model.user_embeddings())
    assert json.loads(t.schema.metadata[b"dot_product"]) is True


def test_a_train_run_writes_its_report_and_training_curve(runs):
    stored = json.loads((runs["early"] / "metrics.json").read_text())
    report = (runs["early"] / "report.md").read_text()
    assert f"test metrics of epoch {stored['best_epoch']}" in report and "![training](training.png)" in report
    assert f"| ndcg | {stored['ndcg@3']:.4f} |" in report
    assert (runs["early"] / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
