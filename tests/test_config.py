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


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=-1", r"train.lr must be > 0, got -1.0"),
        ("train.l2=-0.1", r"train.l2 must be >= 0, got -0.1"),
        ("train.eval_every=-1", r"train.eval_every must be >= 0, got -1"),
        ("eval.chunk=0", r"eval.chunk must be >= 1, got 0"),
        ("model.init_std=-0.1", r"model.init_std must be > 0, got -0.1"),
        ("train.popularity_alpha=-5", r"train.popularity_alpha must be >= 0, got -5.0"),
        ("data.ratios=[0.8, 0.3, 0.1]", r"data.ratios must be 2 or 3 shares .* summing to 1, got \[0.8, 0.3, 0.1\]"),
        ("train.epochs=0", r"train.epochs must be >= 1, got 0 \(0 only evaluates a warm start: set train.init_from\)"),
        ("data.format=bogus", "unknown config key data.format"),
        ("name=../../escape", "name must be a single path component"),
        (
            "train.negative_sampling=zipf",
            r"train.negative_sampling must be one of \['uniform', 'popularity'\], got 'zipf'",
        ),
        ("eval.ks=[10, 0]", r"eval.ks must be >= 1, got \[10, 0\]"),
        ("attack.fpr=1.5", r"attack.fpr must be in \(0, 1\), got 1.5"),
        ("train.batch_size=0", r"train.batch_size must be >= 1, got 0"),
        ("train.n_negatives=0", r"train.n_negatives must be >= 1, got 0"),
    ],
)
def test_values_outside_a_fields_range_name_the_key_the_value_and_the_range(override, message):
    with pytest.raises(JaxrecError, match=rf"^--set {override.split('=')[0]}=.*: {message}"):
        load_config(None, [override])


def test_a_bad_override_is_blamed_on_the_set_and_a_bad_file_on_the_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  lr: 0.01\n")
    with pytest.raises(JaxrecError, match=r"^--set train.epochs=-3: train.epochs must be >= 0"):
        load_config(good, ["train.lr=0.1", "train.epochs=-3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    with pytest.raises(JaxrecError, match=r"bad.yaml: train.lr must be > 0, got -1"):
        load_config(bad, ["train.lr=0.1"])  # the file is wrong even if the override would mend it


def test_a_duplicate_yaml_key_is_an_error_naming_its_line(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\ntrain:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n")
    with pytest.raises(JaxrecError, match=r"dup.yaml: line 5: the key 'lr' appears twice"):
        load_config(dup)


def test_configs_built_in_code_are_checked_by_the_same_rules():
    import dataclasses

    from jaxrec.config import TrainConfig, validate

    with pytest.raises(JaxrecError, match=r"^train.lr must be > 0, got -1"):
        validate(Config(train=TrainConfig(lr=-1)))
    warm = dataclasses.replace(Config().train, epochs=0, init_from="somewhere")
    assert validate(Config(train=warm)).train.epochs == 0  # 0 epochs evaluate a warm start


def test_a_renamed_key_names_its_new_name(tmp_path):
    """``model.init`` shadowed flax's ``Module.init``; the key is ``model.initializer`` now, and the
    old one is refused with the new name (in a file and in a --set)."""
    path = tmp_path / "old.yaml"
    path.write_text("model:\n  init: normal\n")
    with pytest.raises(JaxrecError, match=r"old.yaml: model.init was renamed model.initializer"):
        load_config(path)
    with pytest.raises(JaxrecError, match=r"--set model.init=normal: model.init was renamed model.initializer"):
        load_config(None, ["model.init=normal"])
    assert load_config(None, ["model.initializer=normal"]).model.initializer == "normal"


def test_raw_target_ids_keep_their_type_and_other_values_are_refused():
    """MovieLens and Gowalla item ids are integers: ``attack.targets: [50]`` is 50, not "50"; string
    ids stay strings; anything else is one error naming the key."""
    cfg = load_config(None, ["attack.targets=[50, i3, '7']"])
    assert cfg.attack.targets == (50, "i3", "7")
    with pytest.raises(JaxrecError, match=r"attack.targets\[0\]: expected an integer or a string, got 1.5"):
        load_config(None, ["attack.targets=[1.5]"])


def test_a_check_across_fields_waits_for_the_last_set():
    """``train.epochs=0`` is valid once ``train.init_from`` is set, whichever --set comes first."""
    from jaxrec.config import load_config

    cfg = load_config(None, ["train.epochs=0", "train.init_from=somewhere"])
    assert cfg.train.epochs == 0 and cfg.train.init_from == "somewhere"
    with pytest.raises(JaxrecError, match=r"--set train.epochs=0: train.epochs must be >= 1"):
        load_config(None, ["train.epochs=0", "train.lr=0.01"])
