"""The ``jaxrec`` command line: train end to end, data info, and one-line errors for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import random_interactions, real_data_dir

from jaxrec.cli import main


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    inter = random_interactions(n_users=25, n_items=30, per_user=10, seed=4)
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    rows = "\n".join(f"u{u},i{i},{1 + (u + i) % 5}" for u, i in zip(inter.users, inter.items))
    path.write_text("user_id,item_id,rating\n" + rows + "\n")
    return path


def tiny_args(tiny_csv, out, *extra):
    return [
        "train", "--quiet",
        "--set", f"data.dataset={tiny_csv}", "--set", "data.rating_col=rating",
        "--set", "train.epochs=3", "--set", "train.batch_size=64", "--set", "eval.ks=[5,10]",
        "--set", f"output_dir={out}", "--set", "name=tiny", *extra,
    ]


def test_train_writes_config_and_metrics(tiny_csv, tmp_path, capsys):
    assert main(tiny_args(tiny_csv, tmp_path, "--set", "train.eval_every=1")) == 0
    out = capsys.readouterr().out
    assert "recall" in out and "ndcg" in out
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    for key in ("recall@10", "ndcg@10", "precision@10", "hit@10", "mrr@10", "recall@5"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["epochs"] == 3 and metrics["split"]["users_with_test"] == 25
    assert (tmp_path / "tiny" / "config.yaml").read_text().count("epochs: 3") == 1
    history = (tmp_path / "tiny" / "history.jsonl").read_text().splitlines()
    assert len(history) == 3 and "valid/recall@20" in json.loads(history[-1])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "model.name=svd"], "model.name: unknown model 'svd'"),
        (["--set", "eval.ks=[5,31]"], "eval.ks: K=31 must be between 1 and the number of items (30)"),
        (["--set", "train.loss=hinge"], "train.loss: unknown loss 'hinge'"),
        (["--set", "data.split=predefined"], "data.split: predefined, but"),
        (["--set", "data.dataset=ml-5k"], "ml-5k: neither a known data set"),
        (["--set", "data.rating_col=score"], "score"),
    ],
)
def test_mistakes_give_one_clear_line(tiny_csv, tmp_path, capsys, extra, message):
    assert main(tiny_args(tiny_csv, tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_script_exit_code_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1,2\n3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrec.cli", "train", "--set", f"data.dataset={bad}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_data_info(capsys):
    real_data_dir("ml-100k/u.data")
    assert main(["data", "info", "ml-100k"]) == 0
    out = capsys.readouterr().out
    for fragment in ("943", "1682", "100000", "0.063047"):
        assert fragment in out
