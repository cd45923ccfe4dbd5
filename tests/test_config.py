"""YAML -> typed config: unknown keys, wrong types and overrides are errors naming the key."""

from __future__ import annotations

import pytest

from jaxrec.config import Config, load_config, save_config
from jaxrec.errors import JaxrecError


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.epochs=5", "eval.ks=[5, 10]", "train.lr=1e-2", "train.patience=null"])
    assert cfg.train.epochs == 5 and cfg.eval.ks == (5, 10) and cfg.train.lr == 0.01
    assert cfg.train.patience is None and cfg.model == Config().model


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, ["name=x", "data.ratios=[0.7, 0.3]", "model.mlp_layers=[32]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=5", "unknown config key train.epochz"),
        ("trian.epochs=5", "unknown config key trian"),
        ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
        ("model.dim=1.5", "model.dim: expected an integer, got 1.5"),
        ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
        ("data.deduplicate=3", "data.deduplicate: expected true/false, got 3"),
        ("eval.ks=[10, x]", r"eval.ks\[1\]: expected an integer, got 'x'"),
        ("train=3", "train: expected a mapping of TrainConfig fields"),
        ("train.epochs", "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(JaxrecError, match=message):
        load_config(None, [override])


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(JaxrecError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1, 2\n")
    with pytest.raises(JaxrecError, match="bad.yaml: invalid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  dimm: 3\n")
    with pytest.raises(JaxrecError, match="typo.yaml: unknown config key model.dimm"):
        load_config(typo)
    flat = tmp_path / "flat.yaml"
    flat.write_text("- 1\n- 2\n")
    with pytest.raises(JaxrecError, match="flat.yaml: the top level must be a mapping"):
        load_config(flat)


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)
