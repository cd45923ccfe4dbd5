"""Multi-host training: 2 local CPU processes (gloo collectives) equal the 1-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import random_interactions, restore_one

from jaxrec.cli import main as cli_main
from jaxrec.config import load_config
from jaxrec.experiment import run
from jaxrec.experiment.trained import load_run
from jaxrec.train.checkpoint import Checkpointer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _suite_flags() -> str:
    """The suite's XLA flags (tests/conftest.py: optimisation level 0, faster compiles, as the
    one-process reference here) without a simulated device count: each process has its one CPU
    device."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)


def test_two_processes_equal_one_process(tmp_path):
    inter = random_interactions(n_users=40, n_items=30, per_user=8, seed=3)
    csv = tmp_path / "d.csv"
    csv.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(inter.users, inter.items)))
    overrides = [
        f"data.dataset={csv}",
        "train.epochs=3",
        "train.batch_size=32",
        "train.lr=0.05",
        "eval.ks=[5]",
        f"output_dir={tmp_path / 'runs'}",
        "checkpoint.every=3",
    ]
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxrec.cli",
                "train",
                "-q",
                "--distributed",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                *sum((["--set", o] for o in [*overrides, "name=two"]), []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": _suite_flags()},
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
    assert (tmp_path / "runs" / "two" / "metrics.json").is_file()  # written by process 0

    one = run(load_config(None, [*overrides, "name=one", "checkpoint.every=0"]), progress=False, write=False)
    with Checkpointer(tmp_path / "runs" / "two" / "checkpoints") as ck:
        assert ck.epochs() == [3]
        state, meta = restore_one(ck, one.fit.state)
    assert meta["epoch"] == 3 and int(state.step) == int(one.fit.state.step)
    for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(one.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    # process 0 saved the model alone: it reloads in one process and re-evaluates to the stored metrics
    saved = load_run(tmp_path / "runs" / "two")
    for x, y in zip(jax.tree.leaves(saved.params), jax.tree.leaves(one.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    stored = json.loads((tmp_path / "runs" / "two" / "metrics.json").read_text())
    assert all(v == pytest.approx(stored[k], rel=1e-6) for k, v in saved.evaluate().items())


def test_distributed_flags_are_checked(capsys):
    assert cli_main(["train", "--distributed", "--coordinator", "127.0.0.1:1234"]) == 2
    assert "--distributed needs --coordinator, --num-processes and --process-id together" in capsys.readouterr().err
    assert cli_main(["train", "--num-processes", "2"]) == 2
    assert "need --distributed" in capsys.readouterr().err
