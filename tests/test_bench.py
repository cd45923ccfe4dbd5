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


def test_compare_tells_two_runs_of_one_machine_apart_by_commit(tmp_path, capsys):
    """Before and after a change on the same device: the columns carry the commits, and the cost
    curves stay two curves."""
    a, b = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    for path, commit, scale in ((a, "aaa111", 2.0), (b, "bbb222", 1.0)):
        rows = [
            {**_row("cpu:cpu", "epoch", scale * p / 1e6, data=f"synthetic-{p}", model="mf", optimizer="adam", pairs=p)}
            for p in (1_000_000, 5_000_000)
        ]
        apr = {"data": "ml-100k", "model": "lightgcn"}  # older files have no perturb_at: it was tables
        rows.append(
            _row("cpu:cpu", "apr", scale, **apr)
            if scale > 1
            else _row("cpu:cpu", "apr", 1.0, **apr, perturb_at="tables")
        )
        for r in rows:
            r["machine"]["commit"] = commit
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "runs"
    assert main(["bench", "-q", "--compare", str(a), str(b), "--set", f"output_dir={out}", "--set", "name=cmp"]) == 0
    report = (out / "cmp" / "report.md").read_text()
    assert "| data | model | optimizer | pairs | cpu:cpu (aaa111) | cpu:cpu (bbb222) | ratio |" in report
    assert "| synthetic-5000000 | mf | adam | 5000000 | 10.000 | 5.000 | 2.00 |" in report
    assert "| ml-100k | lightgcn | tables | 2.000 | 1.000 | 2.00 |" in report
    assert (out / "cmp" / "cost_epoch_vs_pairs.png").is_file()


def test_bench_flags_and_a_missing_compare_file(tmp_path, capsys):
    assert main(["bench", "-q", "--compare", str(tmp_path / "nope.jsonl"), str(tmp_path / "b.jsonl")]) == 2
    assert "nope.jsonl is not a file" in capsys.readouterr().err


def test_sequences_suite_flags_and_its_table(capsys):
    assert main(["bench", "-q", "--quick", "--sequences"]) == 2
    assert "--quick and --sequences are two different suites" in capsys.readouterr().err
    from jaxrec.config import Config
    from jaxrec.experiment.studies import bench
    from jaxrec.experiment.studies.base import StudyResult

    row = {"case": "sequence", "data": "amazon-games", "model": "sasrec", "max_len": 50, "batching": "buckets"}
    row.update(dtype="float32", tokens=1000, seconds=2.0, tokens_per_s=500.0, peak_rss_mb=1.0)
    result = StudyResult("bench", Config(), [row], [], {"wall_s": 1.0}, extras=bench.Plan("sequences", ()))
    (table,) = bench.tables(result)
    assert table.rows == [["amazon-games", "sasrec", "50", "buckets", "float32", "1000", "2.000", "500.000", "1.000"]]
    assert "tokens_per_s 500.00" in bench._line(row)
