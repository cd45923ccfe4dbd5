"""orbax checkpoints: exact resume, a real SIGKILL during a save, NaN keeps the last good one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import restore_one

from jaxrec.config import CheckpointConfig, Config, EvalConfig, TrainConfig, load_config
from jaxrec.errors import JaxrecError
from jaxrec.experiment import run
from jaxrec.train.checkpoint import Checkpointer
from jaxrec.train.loop import NonFiniteLossError

HERE = Path(__file__).parent


def _cfg(tmp_path, epochs=4, every=1, keep=2, lr=0.05, ck="ck") -> Config:
    return Config(
        name="ck",
        output_dir=str(tmp_path),
        train=TrainConfig(epochs=epochs, batch_size=16, lr=lr),
        eval=EvalConfig(ks=(5,)),
        checkpoint=CheckpointConfig(every=every, keep=keep, dir=str(tmp_path / ck) if ck else None),
    )


def _leaves_equal(a, b) -> None:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bit-exact, not allclose


def test_interrupted_resumed_equals_uninterrupted_then_nan_keeps_last_good(tmp_path, tiny_split):
    """One story (fewer compilations): save every 2 epochs and at the end, resume bit-exactly,
    then diverge (absurd learning rate) and find the last good checkpoint intact."""
    full = run(_cfg(tmp_path, every=0, ck=None), progress=False, write=False, split=tiny_split)
    run(_cfg(tmp_path, epochs=3, every=2), progress=False, write=False, split=tiny_split)  # "interrupted"
    with Checkpointer(tmp_path / "ck") as ck:
        assert ck.epochs() == [2, 3]  # every 2 epochs, and at the end
    resumed = run(_cfg(tmp_path, epochs=4, every=2), progress=False, write=False, split=tiny_split, resume=True)
    assert [h["epoch"] for h in resumed.fit.history] == [4]
    _leaves_equal(resumed.params, full.params)
    _leaves_equal(resumed.fit.state.opt_state, full.fit.state.opt_state)
    assert int(resumed.fit.state.step) == int(full.fit.state.step)
    assert resumed.fit.history[0]["loss"] == full.fit.history[3]["loss"]
    with Checkpointer(tmp_path / "ck") as ck:
        assert ck.epochs() == [3, 4]  # keep=2
        state, meta = restore_one(ck, resumed.fit.state)
    assert meta["epoch"] == 4 and int(state.step) == int(full.fit.state.step)
    assert meta["config"]["train"]["epochs"] == 4
    _leaves_equal(jax.random.key_data(state.key), jax.random.key_data(full.fit.state.key))
    _leaves_equal(state.params, full.params)

    # continue with an absurd learning rate: epoch 5 diverges, checkpoint 4 survives intact
    with pytest.raises(NonFiniteLossError, match=r"epoch 5: the training loss is (nan|inf)"):
        run(_cfg(tmp_path, epochs=8, every=1, lr=1e30), progress=False, write=False, split=tiny_split, resume=True)
    with Checkpointer(tmp_path / "ck") as ck:
        assert ck.epochs() == [3, 4]  # nothing written for the bad epoch
        state, meta = restore_one(ck, resumed.fit.state)
    assert meta["epoch"] == 4
    _leaves_equal(state.params, full.params)


def test_resume_errors_name_the_problem(tmp_path, tiny_split, capsys):
    with pytest.raises(JaxrecError, match="--resume: no checkpoint directory"):
        run(_cfg(tmp_path), progress=False, write=False, split=tiny_split, resume=True)
    # the CLI flag reaches run(): one error line, exit status 2
    from conftest import random_interactions

    from jaxrec.cli import main as cli_main

    inter = random_interactions(n_users=10, n_items=12, per_user=4)
    csv = tmp_path / "d.csv"
    csv.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(inter.users, inter.items)))
    assert (
        cli_main(
            [
                "train",
                "-q",
                "--resume",
                "--set",
                f"data.dataset={csv}",
                "--set",
                f"output_dir={tmp_path}",
                "--set",
                "name=cli",
                "--set",
                "eval.ks=[5]",
            ]
        )
        == 2
    )
    assert f"--resume: no checkpoint directory {tmp_path / 'cli' / 'checkpoints'}" in capsys.readouterr().err
    with pytest.raises(JaxrecError, match="checkpoint keep must be >= 1"):
        Checkpointer(tmp_path / "x", keep=0)
    with pytest.raises(JaxrecError, match="unknown config key checkpoint.evry"):
        load_config(None, ["checkpoint.evry=2"])


def test_kill_during_save_leaves_the_previous_checkpoint_restorable(tmp_path):
    """SIGKILL a process inside the save of checkpoint 3 (arrays written, not yet renamed into
    place: the child waits there); checkpoint 2 must be the latest and restore exactly."""
    sys.path.insert(0, str(HERE))
    import ckpt_kill_child as child

    directory = tmp_path / "kill"
    proc = subprocess.Popen(
        [sys.executable, "-u", str(HERE / "ckpt_kill_child.py"), str(directory), "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() in ("inside save 3", "saved 3"):
                break
        assert lines[-1] == "inside save 3", (lines, "the child did not stop inside the save")
        assert any(p.name.startswith("3") for p in directory.iterdir())  # the partial save is on disk
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "saved 2" in lines, (lines, proc.stderr.read())
    assert proc.returncode == -signal.SIGKILL
    entries = sorted(p.name for p in directory.iterdir())
    with Checkpointer(directory, async_save=False) as ck:
        assert ck.latest_epoch() == 2 and "3" not in entries, entries  # the partial write is not a checkpoint
        state, meta = ck.restore(child.template())
    assert meta["epoch"] == 2 and int(state.step) == 2
    for leaf in jax.tree.leaves(state.params):
        np.testing.assert_array_equal(np.asarray(leaf), np.full(leaf.shape, 2, leaf.dtype))


def test_history_grows_per_epoch_and_keeps_the_whole_story_across_resumes(tmp_path, tiny_split, capsys, monkeypatch):
    import json

    hist = tmp_path / "ck" / "history.jsonl"

    def epochs_on_disk():
        return [json.loads(line)["epoch"] for line in hist.read_text().splitlines()]

    real_save = Checkpointer.maybe_save

    def killed_at_3(self, epoch, *a, **k):
        if epoch == 3:
            assert epochs_on_disk() == [1, 2]  # written as the epochs finished, not at the end
            raise KeyboardInterrupt
        return real_save(self, epoch, *a, **k)

    monkeypatch.setattr(Checkpointer, "maybe_save", killed_at_3)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(tmp_path, epochs=4, every=1, ck=None), progress=False, split=tiny_split)
    assert epochs_on_disk() == [1, 2]
    monkeypatch.setattr(Checkpointer, "maybe_save", real_save)
    resumed = run(_cfg(tmp_path, epochs=4, every=1, ck=None), progress=False, split=tiny_split, resume=True)
    assert "resuming from epoch 2" in capsys.readouterr().err
    assert epochs_on_disk() == [1, 2, 3, 4] and [h["epoch"] for h in resumed.fit.history] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "ck" / "metrics.json").read_text())["epochs"] == 4
    again = run(_cfg(tmp_path, epochs=4, every=1, ck=None), progress=False, split=tiny_split, resume=True)
    assert "nothing to do" in capsys.readouterr().err
    assert epochs_on_disk() == [1, 2, 3, 4] and len(again.fit.history) == 4


def test_another_models_checkpoint_is_one_clean_error_and_a_damaged_latest_falls_back(tmp_path, tiny_split, capsys):
    import dataclasses
    import shutil

    from jaxrec.config import ModelConfig

    run(_cfg(tmp_path, epochs=2, every=1), progress=False, write=False, split=tiny_split)  # epochs 1 and 2
    capsys.readouterr()
    other = dataclasses.replace(_cfg(tmp_path, epochs=3), model=ModelConfig(dim=8))
    with pytest.raises(
        JaxrecError,
        match=r"does not match this run's state: .*embeddings/\w+ is saved as "
        r"\[1, \d+, 64\], this run has \[1, \d+, 8\] \(another model",
    ):
        run(other, progress=False, write=False, split=tiny_split, resume=True)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "asyncio" not in err and "orbax" not in err
    for part in (tmp_path / "ck" / "2" / "state").iterdir():  # damage the latest checkpoint's arrays
        if part.is_dir():
            shutil.rmtree(part)
    resumed = run(_cfg(tmp_path, epochs=3), progress=False, write=False, split=tiny_split, resume=True)
    assert [h["epoch"] for h in resumed.fit.history] == [2, 3]  # from epoch 1
    err = capsys.readouterr().err
    assert "checkpoint(s) [2]" in err and "resumed from epoch 1" in err and "Traceback" not in err
    with Checkpointer(tmp_path / "ck", keep=2) as ck:
        assert (tmp_path / "ck" / "damaged-2").is_dir() and 3 in ck.epochs()
