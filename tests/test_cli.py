"""The ``jaxrec`` command line: train end to end, data info, and one-line errors for mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import rated_csv_file, real_data_dir

from jaxrec.cli import main


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    return rated_csv_file(tmp_path_factory.mktemp("data"))


def tiny_args(tiny_csv, out, *extra):
    return [
        "train",
        "--quiet",
        "--set",
        f"data.dataset={tiny_csv}",
        "--set",
        "data.rating_col=rating",
        "--set",
        "train.epochs=3",
        "--set",
        "train.batch_size=64",
        "--set",
        "eval.ks=[5,10]",
        "--set",
        f"output_dir={out}",
        "--set",
        "name=tiny",
        *extra,
    ]


def test_train_writes_config_and_metrics(tiny_csv, tmp_path, capsys):
    assert main(tiny_args(tiny_csv, tmp_path, "--set", "train.eval_every=1")) == 0
    out = capsys.readouterr().out
    assert "recall" in out and "ndcg" in out
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    # the same numbers as a separate run of the same configuration through the Python API
    from jaxrec import load_config, run

    args = tiny_args(tiny_csv, tmp_path, "--set", "train.eval_every=1")
    alone = run(load_config(None, args[3::2]), progress=False, write=False)
    for key in ("recall@10", "ndcg@10", "precision@10", "hit@10", "mrr@10", "recall@5"):
        assert metrics[key] == pytest.approx(alone.metrics[key], abs=1e-6), key
    assert metrics["epochs"] == 3 and metrics["split"]["users_with_test"] == 25
    assert (tmp_path / "tiny" / "config.yaml").read_text().count("epochs: 3") == 1
    history = (tmp_path / "tiny" / "history.jsonl").read_text().splitlines()
    assert len(history) == 3 and "valid/recall@20" in json.loads(history[-1])


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--set", "model.name=svd"],
            "model.name must be one of ['mf', 'neumf', 'lightgcn', 'ngcf', 'sasrec', 'bert4rec', 'hstu'], got 'svd'",
        ),
        (["--set", "eval.ks=[5,31]"], "eval.ks: K=31 must be between 1 and the number of items (30)"),
        (
            ["--set", "train.loss=hinge"],
            "--set train.loss=hinge: train.loss must be one of ['bpr', 'bce', 'ce', 'gbce'], got 'hinge'",
        ),
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
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_data_info(capsys):
    real_data_dir("ml-100k/u.data")
    assert main(["data", "info", "ml-100k"]) == 0
    out = capsys.readouterr().out
    for fragment in ("943", "1682", "100000", "0.063047"):
        assert fragment in out


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_robustness_writes_rows_report_and_real_plots(tiny_csv, tmp_path, capsys):
    """Two victim files (one with APR by an override), 2 seeds, two methods at two strengths,
    and data noise: every row is there, summaries match their rows, the plots are images."""
    import matplotlib.image

    victim = "name: v-mf\nmodel: {name: mf, dim: 8}\ntrain: {epochs: 3, batch_size: 64, lr: 0.05}\n"
    (tmp_path / "mf.yaml").write_text(victim)
    (tmp_path / "study.yaml").write_text(
        f"name: study\noutput_dir: {tmp_path / 'runs'}\n"
        f"data: {{dataset: {tiny_csv}, rating_col: rating}}\neval: {{ks: [5, 10]}}\n"
        "robustness:\n  victims: [mf.yaml, 'mf.yaml name=v-amf adv.method=apr adv.eps=0.5']\n"
        "  seeds: 2\n  methods: [random, fgm]\n  eps: [1.0, 0.5]\n  data_kinds: [drop]\n"
        "  data_rates: [0.1]\n  data_seeds: 2\n  worst_users: 2\n  plot_metric: ndcg@10\n"
    )
    assert main(["robustness", "-q", "-c", str(tmp_path / "study.yaml")]) == 0
    out = capsys.readouterr().out
    assert "relative drop of ndcg@10" in out and "v-amf" in out
    run = tmp_path / "runs" / "study"
    res = json.loads((run / "results.json").read_text())
    param = [r for r in res["rows"] if r["method"] != "none"]
    assert len(res["rows"]) - len(param) == 4 and len(param) == 2 * 2 * 2 * 2 and len(res["data_rows"]) == 4
    assert {r["victim"] for r in res["rows"]} == {"v-mf", "v-amf"} and {r["adv"] for r in res["rows"]} == {
        "none",
        "apr",
    }
    s = next(x for x in res["summary"] if (x["victim"], x["method"], x["eps"]) == ("v-amf", "fgm", 1.0))
    mine = [r["drop_ndcg@10"] for r in param if (r["victim"], r["method"], r["eps"]) == ("v-amf", "fgm", 1.0)]
    assert s["n"] == 2 and s["drop_ndcg@10_mean"] == pytest.approx(sum(mine) / 2)
    clean = {r["train_seed"]: r["ndcg@10"] for r in res["rows"] if r["method"] == "none" and r["victim"] == "v-amf"}
    for r in param:
        if r["victim"] == "v-amf":
            assert r["drop_ndcg@10"] == pytest.approx(1 - r["ndcg@10"] / clean[r["train_seed"]])
    assert len(res["worst_users"]) == 2 * 2 * 2 and {w["eps"] for w in res["worst_users"]} == {1.0}  # the largest
    assert (run / "results.csv").read_text().count("\n") == 1 + len(res["rows"]) + len(res["data_rows"])
    report = (run / "report.md").read_text()
    for png in ("ndcg@10_vs_eps.png", "jaccard@10_vs_eps.png", "ndcg@10_vs_rate.png"):
        assert f"]({png})" in report and _png_size(run / png) == (700, 450)
        pixels = matplotlib.image.imread(run / png)
        assert pixels.shape[:2] == (450, 700) and pixels.std() > 0.05  # drawn, not blank


#: each study's minimal valid command line (its mistakes are added to it)
STUDY_ARGS = {
    "robustness": ["--set", "eval.ks=[5,10]", "--set", "robustness.plot_metric=ndcg@10"],
    "attack": ["--set", "data.rating_col=rating", "--set", "attack.kinds=[random]", "--set", "attack.sizes=[3]"],
    "certify": ["--set", "eval.ks=[5]", "--set", "certify.subsample=5"],
}


@pytest.mark.parametrize(
    "command, setting, message",
    [
        (
            "robustness",
            "robustness.methods=[fgm,cw]",
            "robustness.methods must be one of ['random', 'gaussian', 'fgm', 'fgsm', 'pgd'], got ['fgm', 'cw']",
        ),
        ("robustness", "robustness.eps=[-1]", "robustness.eps must be >= 0, got [-1.0]"),
        ("robustness", "robustness.eps=[.inf]", "robustness.eps: give one or more finite strengths >= 0, got [inf]"),
        (
            "robustness",
            "robustness.data_kinds=[swap]",
            "robustness.data_kinds must be one of ['drop', 'add'], got ['swap']",
        ),
        ("robustness", "robustness.plot_metric=ndcg@50", "robustness.plot_metric: 'ndcg@50' is not a metric at one"),
        (
            "robustness",
            "robustness.victims=[nowhere.yaml]",
            "robustness.victims[0]: nowhere.yaml: config file not found",
        ),
        ("robustness", "robustness.seeds=0", "robustness.seeds must be >= 1"),
        (
            "certify",
            "certify.bases=[item,knn]",
            "certify.bases must be one of ['item', 'model', 'transition', 'ablation'], got ['item', 'knn']",
        ),
        ("certify", "certify.subsample=99", "certify.subsample: 99 is more than the 25 users"),
        ("certify", "certify.alpha=1", "certify.alpha must be in (0, 1), got 1.0"),
        ("certify", "certify.reference=[nowhere]", "certify.reference[0]: nowhere: not a PORE vote directory"),
        ("attack", "attack.certified=[svd]", "attack.certified must be one of ['item', 'model'], got ['svd']"),
        (
            "attack",
            "attack.kinds=[sybil]",
            "attack.kinds must be one of ['random', 'average', 'bandwagon', 'gan', 'bilevel', 'truncated', "
            "'closed', 'popular', 'transition'], got ['sybil']",
        ),
        ("attack", "attack.sizes=[1.5]", "attack.sizes: give shares in (0, 1) or whole counts >= 1"),
        ("attack", "attack.sizes=[0.01]", "attack.sizes: [0.01] of 25 users gives an attack without fake users"),
        (
            "attack",
            "attack.detectors=[pca,lof]",
            "attack.detectors must be one of ['d', 'pca', 'rdma', 'degsim', 'repeats'], got ['pca', 'lof']",
        ),
        ("attack", "attack.detectors=[pca,pca]", "attack.detectors: a value repeats in ['pca', 'pca']"),
        (
            "attack",
            "attack.target_pool=cold",
            "attack.target_pool must be one of ['unpopular', 'popular', 'all'], got 'cold'",
        ),
        ("attack", "attack.fpr=0", "attack.fpr must be in (0, 1), got 0.0"),
        ("attack", "attack.targets=[i999]", "attack.targets: target item 'i999' is not an item"),
        ("attack", "data.implicit_threshold=4", "data.implicit_threshold: the attack thresholds after injection"),
        ("attack", "attack.victims=[nowhere.yaml]", "attack.victims[0]: nowhere.yaml: config file not found"),
        (
            "attack",
            "optimized.loss=hinge",
            "optimized.loss must be one of ['logsigmoid', 'hr', 'cw', 'ce'], got 'hinge'",
        ),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[bilevel] optimized.surrogate=nowhere.yaml",
            "optimized.surrogate: nowhere.yaml: config file not found",
        ),
        ("attack", "eval.ks=[5] attack.kinds=[bilevel] optimized.k=999", "optimized.k: 999 is more than the 30 items"),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[truncated] optimized.k=5 optimized.unroll=0",
            "optimized.unroll: the truncated attack trains unroll >= 1 epochs per outer step",
        ),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[closed] optimized.candidates=4 optimized.k=5",
            "optimized.k: 5 is more than the 4 candidate items the closed attack ranks",
        ),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[bandwagon] optimized.k=5 optimized.tune_lam=[5,20]",
            "optimized.tune_lam, tune_kappa: only the closed attack is tuned; add closed to attack.kinds",
        ),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[closed] optimized.k=5 optimized.tune_kappa=[0.1]",
            "optimized.tune_kappa: the logsigmoid loss has no kappa",
        ),
        ("attack", "optimized.tune_lam=[20,0]", "optimized.tune_lam must be > 0, got [20.0, 0.0]"),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[closed] optimized.k=5 optimized.tune_lam=[5] attack.seeds=3 "
            "optimized.proxy_seed=2",
            "optimized.proxy_seed: 2 would train a proxy with a victim's seed",
        ),
        (
            "attack",
            "eval.ks=[5] attack.kinds=[closed] optimized.k=5 optimized.tune_lam=[5] optimized.proxies=[nowhere.yaml]",
            "optimized.proxies[0]: nowhere.yaml: config file not found",
        ),
    ],
)
def test_study_mistakes_give_one_clear_line_before_training(tiny_csv, tmp_path, capsys, command, setting, message):
    args = [
        command,
        "-q",
        "--set",
        f"data.dataset={tiny_csv}",
        *STUDY_ARGS[command],
        "--set",
        f"output_dir={tmp_path}",
        *(x for one in setting.split() for x in ("--set", one)),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not (tmp_path / "run").exists()


def test_certify_prints_its_tables_and_writes_the_report(tiny_csv, tmp_path, capsys):
    sets = [*STUDY_ARGS["certify"], "certify.bases=[item]", "certify.sub_models=20", "certify.max_fakes=2"]
    args = ["certify", "-q", "--set", f"data.dataset={tiny_csv}", "--set", f"output_dir={tmp_path}"]
    args += [x for one in sets if one != "--set" for x in ("--set", one)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "certified_precision@10" in out and "item: 20 bases in" in out
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "votes.npz").is_file()


def test_attack_prints_the_target_hr_tables_and_writes_the_report(tiny_csv, tmp_path, capsys):
    """``jaxrec attack`` end to end on a tiny rated CSV, raw target ids from the file."""
    args = [
        "attack",
        "-q",
        "--set",
        f"data.dataset={tiny_csv}",
        "--set",
        "data.rating_col=rating",
        "--set",
        "eval.ks=[5,10]",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "name=att",
        "--set",
        "model.dim=8",
        "--set",
        "train.epochs=2",
        "--set",
        "train.batch_size=64",
        "--set",
        "attack.kinds=[average]",
        "--set",
        "attack.sizes=[3]",
        "--set",
        "attack.seeds=1",
        "--set",
        "attack.filler=5",
        "--set",
        "attack.targets=[i3,i7]",
        "--set",
        "attack.detectors=[rdma]",
        "--set",
        "attack.trusted=0.2",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "target HR@5" in out and "rdma" in out
    res = json.loads((tmp_path / "att" / "results.json").read_text())
    assert res["targets"] == ["i3", "i7"] and len(res["rows"]) == 1 + 2  # clean + (none, rdma)
    assert (tmp_path / "att" / "roc_average.png").is_file()


def _attack_args(tiny_csv, tmp_path, name: str) -> list[str]:
    """``jaxrec attack`` on the tiny rated data, MF dim 8 for 2 epochs, K = 5, into ``tmp_path/name``."""
    common = (
        f"data.dataset={tiny_csv}",
        "data.rating_col=rating",
        "eval.ks=[5]",
        f"output_dir={tmp_path}",
        f"name={name}",
        "model.dim=8",
        "train.epochs=2",
    )
    return ["attack", "-q", *(x for one in common for x in ("--set", one))]


def test_optimized_attacks_run_as_kinds_of_the_attack_study(tiny_csv, tmp_path, capsys):
    """``bilevel`` (a LightGCN surrogate from its own config file), ``truncated`` and ``closed``
    (EASE) are kinds of ``jaxrec attack``: judged like the heuristic ones, their outer steps in
    results.json, one member per (seed, size)."""
    surrogate = tmp_path / "surrogate.yaml"
    surrogate.write_text("name: lgn\nmodel:\n  name: lightgcn\n  dim: 8\n  layers: 1\ntrain:\n  epochs: 2\n")
    args = _attack_args(tiny_csv, tmp_path, "opt")
    for one in (
        "attack.kinds=[bandwagon,bilevel,truncated,closed]",
        "attack.sizes=[2,3]",
        "attack.seeds=1",
        "attack.filler=4",
        "attack.detectors=[degsim]",
        f"optimized.surrogate={surrogate} train.batch_size=64",
        "optimized.steps=2",
        "optimized.unroll=1",
        "optimized.k=5",
    ):
        args += ["--set", one]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "opt" / "results.json").read_text())
    kinds = {(r["attack"], r["defense"]) for r in res["rows"]}
    assert {("bilevel", "none"), ("truncated", "degsim"), ("closed", "none")} <= kinds
    steps = [(r["attack"], r["step"], r["size"]) for r in res["outer"]]  # members: 1 seed x 2 sizes
    kinds = ("bilevel", "truncated", "closed")
    assert steps == [(kind, step, size) for kind in kinds for step in (1, 2) for size in (2, 3)]
    assert "surrogate HR@5, first" in (tmp_path / "opt" / "report.md").read_text()
    assert (tmp_path / "opt" / "surrogate_target_hr@5_vs_step_bilevel.png").is_file() and "bilevel" in out
    assert res["timing"]["bilevel_optimization_s"] > 0 and res["timing"]["closed_optimization_s"] > 0


def test_closed_settings_are_chosen_on_proxies_and_reported(tiny_csv, tmp_path, capsys):
    """``optimized.tune_lam`` / ``tune_kappa``: the closed attack runs with the grid point its
    proxies (here: this config's model) rate best; results.json and the report show the grid.
    (``train.epochs`` below the default ``optimized.unroll``: closed unrolls nothing.)"""
    args = _attack_args(tiny_csv, tmp_path, "tuned")
    for one in (
        "attack.kinds=[closed]",
        "attack.sizes=[3]",
        "attack.seeds=1",
        "attack.filler=4",
        "attack.detectors=[]",
        "optimized.steps=2",
        "optimized.k=5",
        "optimized.loss=hr",
        "optimized.tune_lam=[2,50]",
        "optimized.tune_kappa=[0.1,1]",
    ):
        args += ["--set", one]
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "tuned" / "results.json").read_text())
    grid = [(r["lam"], r["kappa"]) for r in res["tuning"]]
    assert grid == [(2.0, 0.1), (2.0, 1.0), (50.0, 0.1), (50.0, 1.0)]
    means = [r["proxy_target_hr@5"] for r in res["tuning"]]
    assert [r["chosen"] for r in res["tuning"]] == [i == int(np.argmax(means)) for i in range(4)]
    assert "settings tried on the attacker's proxy victims" in (tmp_path / "tuned" / "report.md").read_text()
    assert res["timing"]["closed_tuning_s"] > 0


def test_integer_raw_ids_are_attack_targets_and_the_report_names_them(tmp_path, capsys):
    """MovieLens and Gowalla item ids are integers: ``attack.targets=[50]`` (a YAML integer) and
    ``["50"]`` both name item 50, and the results and the report give the raw id."""
    rng = np.random.default_rng(3)
    rows = [(u, 10 * i + 0, 1 + (u * i) % 5) for u in range(1, 26) for i in rng.choice(30, 10, replace=False)]
    data = tmp_path / "ids.csv"  # integer ids with gaps: users 1..25, items 0, 10, ..., 290
    data.write_text("user_id,item_id,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    for given in ("[50, 120]", "['50', '120']"):
        args = ["attack", "-q", "--overwrite"]
        for s in (
            f"data.dataset={data}",
            "data.rating_col=rating",
            "eval.ks=[5]",
            f"output_dir={tmp_path}",
            "name=ids",
            "model.dim=8",
            "train.epochs=1",
            "attack.kinds=[random]",
            "attack.sizes=[2]",
            "attack.seeds=1",
            "attack.detectors=[]",
            f"attack.targets={given}",
        ):
            args += ["--set", s]
        assert main(args) == 0, capsys.readouterr().err
        saved = json.loads((tmp_path / "ids" / "results.json").read_text())
        assert saved["targets"] == [50, 120]
        assert (
            "Targets (raw item ids, attacked jointly, push): [50, 120]" in (tmp_path / "ids" / "report.md").read_text()
        )


def test_an_unwritable_output_dir_is_an_error_before_training(tiny_csv, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be\n")
    for command in (["train"], ["sweep", "--grid", "train.seed=0,1"]):
        args = [
            *command,
            "-q",
            "--set",
            f"data.dataset={tiny_csv}",
            "--set",
            f"output_dir={blocker}",
            "--set",
            "train.epochs=1",
            "--set",
            "eval.ks=[5]",
        ]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"error: output_dir: cannot write the results to {blocker}/run") and "Traceback" not in err
        )
    if os.geteuid() != 0:  # root writes anywhere: the permission check cannot fail for it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["train", "-q", "--set", f"data.dataset={tiny_csv}", "--set", f"output_dir={locked}"]) == 2
        assert "cannot write the results" in capsys.readouterr().err


def test_when_writing_fails_after_training_the_table_is_still_printed(tiny_csv, tmp_path, capsys, monkeypatch):
    import jaxrec.experiment.output as output

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "atomic_write", full_disk)
    assert main(tiny_args(tiny_csv, tmp_path)) == 0
    out, err = capsys.readouterr()
    assert "recall" in out and f"could not write the results to {tmp_path}/tiny (No space left on device)" in err
    assert not (tmp_path / "tiny" / "metrics.json").exists()


def test_files_are_written_atomically(tmp_path):
    from jaxrec.experiment.output import atomic_write

    target = tmp_path / "metrics.json"
    target.write_text("old\n")

    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # fails while writing the temporary file
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_version_and_help_are_plain_text(capsys):
    from jaxrec import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"jaxrec {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["gan", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the unconditional GAN over ml-100k users" in out and "MF on ml-100k" not in out


def test_validation_without_a_validation_part_points_at_ratios_and_valid_path(tiny_csv, tmp_path, capsys):
    args = tiny_args(tiny_csv, tmp_path, "--set", "data.ratios=[0.8, 0.2]", "--set", "train.eval_every=1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.eval_every=1 needs a validation part" in err and "data.valid_path" in err


def test_the_quick_start_script_and_ci_run_the_readmes_commands():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["bash dev.sh demo", "bash dev.sh test"]
    assert "bash dev.sh test" in (root / ".ci" / "run").read_text()
    assert "../shared" not in readme and "REFERENCE.md" not in readme and "DESIGN.md" not in readme
    bad = subprocess.run(["bash", str(root / "dev.sh"), "bogus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "bash dev.sh demo" in bad.stderr


def test_a_run_directory_is_never_silently_overwritten_or_mixed(tiny_csv, tmp_path, capsys):
    from jaxrec import __version__

    assert main(tiny_args(tiny_csv, tmp_path)) == 0
    info = json.loads((tmp_path / "tiny" / "run.json").read_text())
    assert (
        info["command"] == "train"
        and info["jaxrec"] == __version__
        and info["argv"][:3] == ["jaxrec", "train", "--quiet"]
    )
    capsys.readouterr()
    assert main(tiny_args(tiny_csv, tmp_path)) == 2  # the same name again
    err = capsys.readouterr().err
    assert f"{tmp_path / 'tiny'} already holds the results of a `jaxrec train` run" in err and "--overwrite" in err
    sweep_args = ["sweep", "-q", "--grid", "train.seed=0,1", *tiny_args(tiny_csv, tmp_path)[2:]]
    assert main(sweep_args) == 2  # another command into the train run's folder
    assert "already holds the results of a `jaxrec train` run" in capsys.readouterr().err
    assert main([*sweep_args, "--resume"]) == 2
    assert "holds a `jaxrec train` run, not a `jaxrec sweep` run" in capsys.readouterr().err
    (tmp_path / "tiny" / "stale.png").write_text("from the old run")
    assert main([*tiny_args(tiny_csv, tmp_path), "--overwrite"]) == 0
    assert not (tmp_path / "tiny" / "stale.png").exists() and (tmp_path / "tiny" / "metrics.json").is_file()


def test_a_batch_larger_than_the_data_is_clamped_aloud(tiny_csv, tmp_path, capsys):
    assert main(tiny_args(tiny_csv, tmp_path, "--set", "train.batch_size=100000000")) == 0
    out, err = capsys.readouterr()
    assert "train.batch_size=100000000 is more than the" in err and "one batch per epoch" in err and "recall" in out
