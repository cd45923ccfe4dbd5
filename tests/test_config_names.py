"""The shipped configs (package data, also the repository's ``configs/``), configs by name and the
references inside a config, sections checked when built in Python, errors worded for the caller,
and the packaging that makes a fresh install quiet."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import rated_csv_file

import jaxrec
from jaxrec import errors
from jaxrec.config import (
    AttackConfig,
    Config,
    DataConfig,
    EvalConfig,
    TrainConfig,
    load_config,
    resolve_config,
    shipped_configs,
)
from jaxrec.errors import JaxrecError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "jaxrec" / "configs"


@pytest.fixture(scope="module")
def rated_csv(tmp_path_factory):
    return rated_csv_file(tmp_path_factory.mktemp("data"))


def tiny(rated_csv, out: Path, *extra: str) -> list[str]:
    """``--set`` overrides for a seconds-long run of a shipped MF config on the tiny data."""
    sets = [
        f"data.dataset={rated_csv}",
        "data.rating_col=rating",
        "train.epochs=1",
        "train.batch_size=64",
        "eval.ks=[5]",
        f"output_dir={out}",
        *extra,
    ]
    return [a for s in sets for a in ("--set", s)]


# ------------------------------------------------------------------------------------------------
# A. the configs ship as package data; configs/ stays


def test_the_configs_live_in_the_package_and_configs_is_a_link_to_them():
    names = sorted(p.name for p in SHIPPED.glob("*.yaml"))
    assert "ml100k-mf.yaml" in names and "ml100k-attack.yaml" in names
    link = ROOT / "configs"
    assert link.is_symlink() and os.readlink(link) == "jaxrec/configs"  # relative: any checkout
    assert sorted(p.name for p in link.glob("*.yaml")) == names
    assert load_config(link / "ml100k-mf.yaml") == load_config(SHIPPED / "ml100k-mf.yaml")
    assert {f"{n}.yaml" for n in shipped_configs()} == set(names)
    assert all(p.resolve() == (SHIPPED / p.name).resolve() for p in shipped_configs().values())


def test_pyproject_ships_the_configs_and_the_license():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["jaxrec"]
    shipped = {p.relative_to(ROOT / "jaxrec").as_posix() for g in globs for p in (ROOT / "jaxrec").glob(g)}
    assert {f"configs/{p.name}" for p in SHIPPED.glob("*.yaml")} <= shipped
    project = meta["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # SPDX only
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text.split("\n", 3)[1] and "Version 2.0, January 2004" in text
    floor = re.search(r"setuptools>=(\d+)", " ".join(meta["build-system"]["requires"]))
    assert floor and int(floor.group(1)) >= 77  # an SPDX license and license-files need setuptools 77


# ------------------------------------------------------------------------------------------------
# B. a path or a name


def test_a_name_finds_the_shipped_config_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = load_config("ml100k-mf")
    assert by_name == load_config("ml100k-mf.yaml") == load_config(SHIPPED / "ml100k-mf.yaml")
    assert by_name.name == "ml100k-mf"
    assert resolve_config("ml100k-mf") == shipped_configs()["ml100k-mf"]
    assert load_config("ml100k-mf", ["train.epochs=3"]).train.epochs == 3


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ml100k-mf.yaml").write_text("name: mine\n")
    assert load_config("ml100k-mf.yaml").name == "mine"
    assert load_config("ml100k-mf").name == "ml100k-mf"  # no file called ml100k-mf: the shipped one


def test_an_unknown_name_is_one_error_listing_the_shipped_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JaxrecError, match=r"^ml100k-mff: config file not found, .*ml100k-mf, .*ml100k-sasrec[^)]*\)$"):
        load_config("ml100k-mff")
    with pytest.raises(JaxrecError, match=r"^somewhere/x.yaml: config file not found$"):
        load_config("somewhere/x.yaml")  # a path, not a name: no shipped config is guessed


def test_references_in_a_config_resolve_next_to_it_then_by_name(tmp_path):
    from jaxrec.experiment.studies.base import victims

    own = tmp_path / "study"
    own.mkdir()
    (own / "ml100k-mf.yaml").write_text("name: local-mf\n")
    cfg = Config(name="s", attack=AttackConfig(victims=("ml100k-mf.yaml", "ml100k-neumf train.epochs=2")))
    got = victims(cfg, own, "attack")
    assert [label for label, _ in got] == ["local-mf", "ml100k-neumf"]  # next to the file, then shipped
    assert got[1][1].model.name == "neumf" and got[1][1].train.epochs == 2
    with pytest.raises(JaxrecError, match=r"^attack.victims\[0\]: .*nope.yaml: config file not found, .*shipped: "):
        victims(dataclasses.replace(cfg, attack=AttackConfig(victims=("nope.yaml",))), own, "attack")


def test_a_shipped_study_by_name_finds_its_shipped_victims(tmp_path, monkeypatch):
    """``ml100k-robustness`` names its victims ``ml100k-mf.yaml`` ...: from any directory they are
    the shipped ones."""
    from jaxrec.experiment.studies.base import victims

    monkeypatch.chdir(tmp_path)
    cfg = load_config("ml100k-robustness")
    labels = [label for label, _ in victims(cfg, ".", "robustness")]
    assert labels and all(f"{label}" in shipped_configs() for label in labels)


def test_the_cli_trains_a_shipped_config_by_name(rated_csv, tmp_path, monkeypatch, capsys):
    from jaxrec.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "-q", "-c", "ml100k-mf", *tiny(rated_csv, tmp_path / "runs")]) == 0
    assert json.loads((tmp_path / "runs" / "ml100k-mf" / "metrics.json").read_text())["recall@5"] >= 0
    capsys.readouterr()
    assert main(["train", "-q", "-c", "ml100k-mff"]) == 2
    assert "jaxrec ships no config 'ml100k-mff' (shipped: " in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# C. a section built in Python is checked when it is built


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: TrainConfig(epochs=-1), r"^train.epochs must be >= 0, got -1$"),
        (lambda: Config(train=TrainConfig(lr="x")), r"^train.lr: expected a number, got 'x'$"),
        (lambda: jaxrec.TrainConfig(batch_size=0), r"^train.batch_size must be >= 1, got 0$"),
        (lambda: EvalConfig(ks=(10, 0)), r"^eval.ks must be >= 1, got \[10, 0\]$"),
        (lambda: EvalConfig(ks=(10, "x")), r"^eval.ks\[1\]: expected an integer, got 'x'$"),
        (lambda: DataConfig(split="magic"), r"^data.split must be one of \[.*\], got 'magic'$"),
        (lambda: AttackConfig(filler=-1), r"^attack.filler must be >= 0, got -1$"),
        (lambda: Config(name="../x"), r"^name must be a single path component"),
        (lambda: Config(train={"epochs": 3}), r"^train: expected a TrainConfig, got \{'epochs': 3\}$"),
        (lambda: TrainConfig(epochs=True), r"^train.epochs: expected an integer, got True$"),
        # the checks across fields, as load_config makes them
        (lambda: TrainConfig(epochs=0), r"^train.epochs must be >= 1, got 0 \(0 only evaluates a warm start"),
        (lambda: DataConfig(ratios=(0.5, 0.1)), r"^data.ratios must be 2 or 3 shares .* got \[0.5, 0.1\]$"),
        (lambda: dataclasses.replace(Config().train, epochs=-2), r"^train.epochs must be >= 0, got -2$"),
        (lambda: dataclasses.replace(Config(), name=""), r"^name must be a single path component"),
    ],
)
def test_a_section_built_in_python_is_checked_when_built(build, message):
    with pytest.raises(JaxrecError, match=message):
        build()


def test_python_and_yaml_give_the_same_message():
    for key, value, build in [
        ("train.epochs", "-1", lambda: TrainConfig(epochs=-1)),
        ("train.lr", "fast", lambda: TrainConfig(lr="fast")),
        ("attack.fpr", "1.5", lambda: AttackConfig(fpr=1.5)),
    ]:
        with pytest.raises(JaxrecError) as from_python:
            build()
        with pytest.raises(JaxrecError) as from_yaml:
            load_config(None, [f"{key}={value}"])
        assert str(from_yaml.value) == f"--set {key}={value}: {from_python.value}"


def test_values_built_in_python_take_their_annotated_types():
    """A sweep's numpy values, a list for a tuple, an int for a float: converted once, when
    built, so a config stays hashable (``jit``'s static arguments) and writes as plain YAML."""
    t = TrainConfig(lr=1, seed=np.int64(3), betas=[0.9, 0.99], l2=np.float32(0.5))
    assert (t.lr, t.seed, t.betas, t.l2) == (1.0, 3, (0.9, 0.99), 0.5)
    assert type(t.lr) is float and type(t.seed) is int and type(t.l2) is float and type(t.betas) is tuple
    assert hash(Config(train=t)) == hash(Config(train=dataclasses.replace(t)))
    warm = dataclasses.replace(Config().train, epochs=0, init_from="somewhere")  # both at once: valid
    assert warm.epochs == 0
    assert dataclasses.replace(Config(), train=warm).train is warm


# ------------------------------------------------------------------------------------------------
# D. errors worded for the caller


def _held(tmp_path: Path, command: str) -> Config:
    cfg = Config(name="taken", output_dir=str(tmp_path))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "run.json").write_text(json.dumps({"command": command}))
    (tmp_path / "taken" / "config.yaml").write_text("name: taken\n")
    return cfg


def test_a_taken_run_directory_is_worded_for_python_and_for_the_cli(tmp_path):
    from jaxrec.experiment.output import check_writable

    cfg = _held(tmp_path, "train")
    with pytest.raises(JaxrecError) as python:
        check_writable(cfg, "train")
    said = str(python.value)
    assert "give this run another name (dataclasses.replace(cfg, name=...))" in said
    assert "overwrite=True to replace them (resume=True to continue it)" in said
    assert "--" not in said and "a run of `train`" in said
    with errors.caller("cli"), pytest.raises(JaxrecError) as cli:
        check_writable(cfg, "train")
    said = str(cli.value)
    assert "a `jaxrec train` run; give this run another name (--set name=...), or --overwrite" in said
    assert "(--resume to continue it)" in said
    assert errors.CALLER == "python"  # restored
    with pytest.raises(JaxrecError, match=r"^resume=True: .* holds a run of `train`, not a run of `sweep`"):
        check_writable(cfg, "sweep", resume=True)


def test_resuming_is_offered_only_to_commands_that_can_resume(tmp_path):
    from jaxrec.experiment.output import check_writable

    cfg = _held(tmp_path, "attack")
    for caller in ("python", "cli"):
        with errors.caller(caller), pytest.raises(JaxrecError) as no_resume:
            check_writable(cfg, "attack")  # jaxrec attack has no --resume
        assert "resume" not in str(no_resume.value) and "overwrite" in str(no_resume.value)
    for command in ("sweep", "gan", "train"):  # these can
        with pytest.raises(JaxrecError, match=r"\(resume=True to continue it\)$"):
            check_writable(cfg, command)
    with pytest.raises(JaxrecError, match=r"overwrite=True to replace them$"):
        check_writable(cfg, "train", resumable=False)


def test_a_second_run_in_one_python_session_says_what_to_pass(rated_csv, tmp_path):
    cfg = load_config("ml100k-mf", tiny(rated_csv, tmp_path)[1::2])
    jaxrec.run(cfg, progress=False)
    with pytest.raises(JaxrecError) as again:
        jaxrec.run(cfg, progress=False)
    said = str(again.value)
    assert "dataclasses.replace(cfg, name=...)" in said and "overwrite=True" in said and "resume=True" in said
    assert "--set" not in said and "--overwrite" not in said


# ------------------------------------------------------------------------------------------------
# E. keyed messages


def test_an_attack_filler_beyond_the_items_names_the_key_before_any_training(rated_csv):
    from jaxrec.experiment.studies import attack

    cfg = load_config(
        "ml100k-attack",
        [
            f"data.dataset={rated_csv}",
            "data.rating_col=rating",
            "attack.victims=[]",
            "attack.kinds=[random]",
            "attack.sizes=[2]",
            "attack.filler=5000",
        ],
    )
    with pytest.raises(
        JaxrecError, match=r"^attack.filler: 5000 items per profile, but only \d+ items are not targets"
    ):
        attack.check(cfg, ".")
