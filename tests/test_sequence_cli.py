"""``jaxrec train`` with sequence models: a run end to end, and each mistake one keyed line
before any training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxrec.cli import main


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory):
    rng = np.random.default_rng(1)
    rows = [f"u{u},i{int(rng.integers(0, 25))},{t}" for u in range(20) for t in range(int(rng.integers(3, 9)))]
    path = tmp_path_factory.mktemp("seq") / "events.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    return path


def seq_args(path, out, *extra):
    sets = {
        "data.dataset": str(path),
        "data.time_col": "timestamp",
        "data.split": "leave_one_out",
        "model.name": "sasrec",
        "model.dim": "8",
        "model.layers": "1",
        "model.max_len": "6",
        "train.epochs": "2",
        "train.batch_size": "8",
        "train.loss": "bce",
        "train.buckets": "[]",
        "eval.ks": "[5,10]",
        "output_dir": str(out),
        "name": "seq",
    }
    args = ["train", "--quiet"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def test_a_sequence_model_trains_from_the_command_line(events_csv, tmp_path, capsys):
    assert main(seq_args(events_csv, tmp_path, "--set", "eval.protocol=sampled", "--set", "eval.negatives=20")) == 0
    assert "test (sampled," in capsys.readouterr().out
    metrics = json.loads((tmp_path / "seq" / "metrics.json").read_text())
    assert metrics["protocol"] == "sampled" and 0.0 <= metrics["ndcg@10"] <= metrics["hit@10"] <= 1.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "model.max_len=1"], "model.max_len: a history window needs at least 2 positions"),
        (["--set", "model.heads=3"], "model.heads: 3 heads do not divide model.dim=8"),
        (["--set", "model.attention=cudnn"], "model.attention: cudnn needs a GPU"),
        (["--set", "train.loss=bpr"], "train.loss: 'bpr' is not a sequence model's loss"),
        (["--set", "train.loss=hinge"], "train.loss"),
        (["--set", "model.name=bert4rec"], "train.loss: bert4rec trains by Cloze masking with ce"),
        (["--set", 'data.time_col=""'], "data.order:"),
        (["--set", "data.split=random"], "data.split: 'random', but a sequence model"),
        (["--set", "eval.protocol=sampled", "--set", "eval.negatives=5"], "eval.ks: K=10 exceeds the 6 ranked items"),
    ],
)
def test_sequence_mistakes_give_one_clear_line(events_csv, tmp_path, capsys, extra, message):
    assert main(seq_args(events_csv, tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_sampled_protocol_needs_leave_one_out(tmp_path, capsys):
    from conftest import random_interactions

    inter = random_interactions(n_users=10, n_items=20, per_user=6)
    path = tmp_path / "pairs.csv"
    path.write_text("user_id,item_id\n" + "\n".join(f"{u},{i}" for u, i in zip(inter.users, inter.items)) + "\n")
    args = ["train", "--quiet", "--set", f"data.dataset={path}", "--set", "eval.protocol=sampled"]
    assert main(args + ["--set", f"output_dir={tmp_path}"]) == 2
    assert "eval.protocol: sampled ranks each user's one held-out item" in capsys.readouterr().err


def test_too_few_events_for_the_sasrec_rule(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,1\n1,b,2\n2,a,1\n2,c,2\n")
    assert main(seq_args(path, tmp_path, "--set", "data.loo_rule=sasrec")) == 2
    assert "data.loo_rule: no user" in capsys.readouterr().err


@pytest.mark.parametrize(
    "study, message",
    [
        ("robustness", "robustness.data_kinds: retraining on noisy data is not available for sequence victims"),
        ("attack", "attack.kinds: ['average', 'gan'] attack rated profiles; sequence victims take one of"),
        ("certify", "certify.subsample: 200 is more than the 20 users"),
    ],
)
def test_studies_refuse_what_they_cannot_do_with_sequence_victims_in_one_line(
    events_csv, tmp_path, capsys, study, message
):
    args = seq_args(events_csv, tmp_path, "--set", "eval.ks=[10,20]", "--set", "robustness.data_kinds=[drop]")
    args[0] = study
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
