"""The CLI's persistent compilation cache: where ``$JAXREC_COMPILE_CACHE`` puts it, and a second
``jaxrec train`` that loads its compiled programs from a shared temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import random_interactions

from jaxrec.compile_cache import cache_dir


def test_the_environment_variable_chooses_the_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXREC_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "jaxrec" / "xla"
    monkeypatch.setenv("JAXREC_COMPILE_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    for off in ("off", "0", "OFF", "false"):
        monkeypatch.setenv("JAXREC_COMPILE_CACHE", off)
        assert cache_dir() is None


def test_a_second_run_loads_its_programs_from_the_cache(tmp_path):
    inter = random_interactions(n_users=60, n_items=50, per_user=10, seed=4)
    csv = tmp_path / "d.csv"
    csv.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in zip(inter.users, inter.items)))
    cache = tmp_path / "xla"
    env = {**os.environ, "JAXREC_COMPILE_CACHE": str(cache), "XLA_FLAGS": ""}  # the library's default level
    compile_s = []
    for name in ("first", "second"):
        sets = [f"data.dataset={csv}", "train.epochs=2", "eval.ks=[5]", f"output_dir={tmp_path}", f"name={name}"]
        cmd = [sys.executable, "-m", "jaxrec.cli", "train", "-q", *sum((["--set", s] for s in sets), [])]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        compile_s.append(json.loads((tmp_path / name / "metrics.json").read_text())["compile_s"])
        if name == "first":
            entries = sorted(Path(cache).glob("*-cache"))
            assert entries, "the first run cached nothing"
    assert sorted(Path(cache).glob("*-cache")) == entries  # the second run compiled nothing new
    assert compile_s[1] < compile_s[0] / 2, compile_s
