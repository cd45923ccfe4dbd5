"""``jaxrec bench``: the suite's report, and two machines compared in one report."""

from __future__ import annotations

import json

from jaxrec.cli import main


def _row(device: str, case: str, seconds: float, **keys) -> dict:
    return {"case": case, "seconds": seconds, **keys, "machine": {"device": device}}


def test_compare_puts_two_machines_side_by_side_with_their_ratio(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = {"data": "ml-100k", "model": "mf", "pairs": 80808, "batch": 2048}
    a.write_text("\n".join(json.dumps(r) for r in [_row("cpu:x", "epoch", 0.03, optimizer="adam", **common)]) + "\n")
    b.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                _row("gpu:H200", "epoch", 0.006, optimizer="adam", **common),
                _row("gpu:H200", "epoch", 0.004, optimizer="lazy_adam", **common),
            ]
        )
        + "\n"
    )
    out = tmp_path / "runs"
    assert main(["bench", "-q", "--compare", str(a), str(b), "--set", f"output_dir={out}", "--set", "name=cmp"]) == 0
    report = (out / "cmp" / "report.md").read_text()
    assert "| ml-100k | mf | adam | 80808 | 0.030 | 0.006 | 5.00 |" in report
    assert "| ml-100k | mf | lazy_adam | 80808 | - | 0.004 | - |" in report
    assert "cpu:x" in report and "gpu:H200" in report


def test_bench_flags_and_a_missing_compare_file(tmp_path, capsys):
    assert main(["bench", "-q", "--compare", str(tmp_path / "nope.jsonl"), str(tmp_path / "b.jsonl")]) == 2
    assert "nope.jsonl is not a file" in capsys.readouterr().err
