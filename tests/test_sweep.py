"""``jaxrec sweep`` / ``jaxrec.sweep``: a grid as members of as few programs as possible."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from jaxrec import load_run
from jaxrec.cli import main as cli_main
from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.experiment import parse_grid, run, sweep


def _cfg(tmp_path) -> Config:
    return Config(
        name="sw",
        output_dir=str(tmp_path),
        model=ModelConfig(dim=8),
        eval=EvalConfig(ks=(5, 10)),
        train=TrainConfig(epochs=3, batch_size=16, lr=0.01),
    )


def test_sweep_rows_summary_files_and_groups(tmp_path, tiny_split):
    cfg = _cfg(tmp_path)
    grid = parse_grid(["train.seed=0,1,2", "train.lr=0.01,0.05", "model.dim=4,8"])
    res = sweep(cfg, grid, progress=False, split=tiny_split)
    assert res.timing["members"] == 12 and res.timing["programs"] == 2  # one per model.dim
    assert len(res.rows) == 12 and {r["group"] for r in res.rows} == {0, 1}
    # a member row equals the separate run of its configuration
    row = next(r for r in res.rows if (r["train.seed"], r["train.lr"], r["model.dim"]) == (2, 0.05, 4))
    alone = run(
        Config(
            **{
                **cfg.__dict__,
                "model": ModelConfig(dim=4),
                "train": TrainConfig(epochs=3, batch_size=16, lr=0.05, seed=2),
            }
        ),
        progress=False,
        write=False,
        split=tiny_split,
    )
    for k, v in alone.metrics.items():
        assert abs(row[k] - v) < 1e-4, k
    # summary: one row per (lr, dim), mean and sample std over the 3 seeds
    assert len(res.summary) == 4
    s = next(x for x in res.summary if (x["train.lr"], x["model.dim"]) == (0.01, 8))
    vals = [r["recall@10"] for r in res.rows if (r["train.lr"], r["model.dim"]) == (0.01, 8)]
    assert s["n"] == 3 and s["recall@10_mean"] == pytest.approx(np.mean(vals))
    assert s["recall@10_std"] == pytest.approx(np.std(vals, ddof=1))
    # files
    out = tmp_path / "sw"
    with open(out / "results.csv") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 12 and float(got[0]["recall@10"]) == pytest.approx(res.rows[0]["recall@10"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["grid"]["model.dim"] == [4, 8] and len(saved["summary"]) == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["grid"]["train.seed"] == [0, 1, 2]
    # every member keeps its model: reloaded, it re-evaluates to its row (the vmapped evaluator's)
    i = res.rows.index(row)
    member = load_run(out / "members" / str(i))
    assert (member.config.train.seed, member.config.model.dim) == (2, 4)
    got = member.evaluate()
    assert all(got[k] == pytest.approx(row[k], rel=1e-5, abs=1e-7) for k in got)


def test_a_sweep_over_epochs_compiles_one_epoch_program(tmp_path, tiny_split):
    """``train.epochs=2,3`` are two groups (members of one program train equally long) that share
    one compiled epoch program: its key is what the trace depends on, not the whole config."""
    res = sweep(_cfg(tmp_path), {"train.epochs": [2, 3]}, progress=False, write=False, split=tiny_split)
    short, long = res.extras.groups
    assert res.timing["programs"] == 2 and res.timing["compiled"] == 1
    assert short.engine is long.engine and short.engine.epoch.traces() == 1
    assert [r["epochs"] for r in res.rows] == [2, 3]
    # and the two groups are the runs they stand for: the 3-epoch member equals a 3-epoch run
    alone = run(Config(**{**_cfg(tmp_path).__dict__, "name": "x"}), progress=False, write=False, split=tiny_split)
    assert res.rows[1]["recall@10"] == pytest.approx(alone.metrics["recall@10"], abs=1e-6)


def test_sweep_cli_and_its_errors(tmp_path, tiny_split, capsys):
    from conftest import random_interactions

    inter = random_interactions(n_users=12, n_items=14, per_user=5)
    data = tmp_path / "d.csv"
    data.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(inter.users, inter.items)))
    base = [
        "sweep",
        "-q",
        "--set",
        f"data.dataset={data}",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "name=cli",
        "--set",
        "eval.ks=[5]",
        "--set",
        "train.epochs=2",
        "--set",
        "train.batch_size=8",
    ]
    assert cli_main([*base, "--grid", "train.seed=0,1", "--grid", "train.l2=0,0.1"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "4 members in 1 program(s)" in out and "recall@5" in out
    assert len((tmp_path / "cli" / "results.csv").read_text().strip().splitlines()) == 1 + 4
    for grid, message in [
        ("train.lrr=1,2", "--grid train.lrr: unknown config key"),
        ("train.lr=abc", "train.lr: expected a number, got 'abc'"),
        ("train.lr", "expected KEY=V1,V2"),
        ("train.lr=0.1,", "an empty value"),
    ]:
        assert cli_main([*base, "--grid", grid]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert cli_main([*base]) == 2
    assert "the sweep grid is empty" in capsys.readouterr().err
    with pytest.raises(JaxrecError, match="train.seed is given twice"):
        parse_grid(["train.seed=0", "train.seed=1"])


def test_sweep_resumes_every_program_from_its_checkpoints(tmp_path, tiny_split):
    from jaxrec.config import CheckpointConfig

    cfg = Config(**{**_cfg(tmp_path).__dict__, "checkpoint": CheckpointConfig(every=1)})
    grid = {"train.seed": [0, 1], "model.dim": [4, 8]}
    full = sweep(Config(**{**cfg.__dict__, "name": "full"}), grid, progress=False, split=tiny_split)
    part = Config(**{**cfg.__dict__, "train": TrainConfig(epochs=2, batch_size=16, lr=0.01)})
    sweep(part, grid, progress=False, split=tiny_split)
    assert sorted(p.name for p in (tmp_path / "sw" / "checkpoints").iterdir()) == ["group-0", "group-1"]
    resumed = sweep(cfg, grid, progress=False, split=tiny_split, resume=True)
    assert [r["epochs"] for r in resumed.rows] == [3] * 4
    for a, b in zip(resumed.rows, full.rows):  # the resumed sweep ends where the uninterrupted one does
        assert a["recall@10"] == pytest.approx(b["recall@10"], abs=1e-6)
