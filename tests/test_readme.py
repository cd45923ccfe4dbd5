"""The README's Python quick start, run line by line as a user would type it (in a fresh working
directory), and checked: the recommendations leave out the user's items and equal a numpy top-10
of the exported embeddings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from conftest import real_data_dir

README = Path(__file__).parent.parent / "README.md"


def quick_start_lines() -> list[str]:
    """The lines of the first ```python block after 'The same from Python'."""
    text = README.read_text()
    block = re.search(r"The same from Python.*?```python\n(.*?)```", text, re.S)
    assert block, "README: the Python quick start block is missing"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_python_quick_start_runs_line_by_line(tmp_path, monkeypatch, capsys):
    real_data_dir("ml-100k/u.data")
    lines = quick_start_lines()
    assert 1 <= len(lines) <= 6
    monkeypatch.chdir(tmp_path)  # runs/ and embeddings.npz land here, as in a fresh directory
    namespace: dict = {}
    for line in lines:
        exec(compile(line, f"README.md: {line}", "exec"), namespace)
    model, recs = namespace["model"], namespace["recs"]
    printed = capsys.readouterr().out
    assert str(recs.items[0][0]) in printed
    with np.load(tmp_path / "embeddings.npz", allow_pickle=False) as f:
        scores = f["user_embeddings"] @ f["item_embeddings"].T
        u = int(np.flatnonzero(f["user_ids"] == 5)[0])
        item_ids = f["item_ids"]
    s = model.split
    own = np.concatenate([p.items[p.users == u] for p in (s.train, s.valid, s.test) if p is not None])
    row = scores[u].astype(np.float64)
    row[own] = -np.inf
    np.testing.assert_array_equal(recs.items[0], item_ids[np.argsort(-row, kind="stable")[:10]])
    assert not set(recs.items[0]) & set(item_ids[own])
