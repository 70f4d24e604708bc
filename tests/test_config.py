from pathlib import Path

import pytest

from handssca.config import ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.batch_size=32", "model.block=ssa", "train.lr_milestones=[1, 2]", "name=x"])
    assert cfg.train.batch_size == 32 and cfg.model.block == "ssa" and cfg.train.lr_milestones == [1, 2]
    assert cfg.name == "x"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batchsize=3", r"unknown keys \['train.batchsize'\]; valid keys in 'train' are .*'batch_size'"),
        ("trian.epochs=3", r"unknown sections \['trian'\]"),
        ("model.block=mamba", "model.block: expected one of"),
        ("train.loss_weights={verts: 1.0}", r"unknown train.loss_weights \['verts'\]"),
        ("batch_size", "expected section.key=value"),
    ],
)
def test_bad_configs_are_explained(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "u.yaml"
    unknown.write_text("data:\n  datset: freihand\n")
    with pytest.raises(ConfigError, match=r"u.yaml: unknown keys \['data.datset'\]"):
        load_config(unknown)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    if path.stem.startswith("ablation_"):
        assert cfg.model.block == path.stem[len("ablation_") :] and cfg.model.input_size == 224
    if path.stem == "dexycb":
        assert cfg.train.epochs == 20 and cfg.train.lr_factor == 0.9 and len(cfg.train.lr_milestones) == 19


def test_partial_loss_weights_keep_the_papers_other_weights():
    from handssca.config import LOSS_WEIGHTS

    cfg = load_config(None, ["train.loss_weights={articulation: 5.0, shape: 1.0}"])
    assert cfg.train.loss_weights == {**LOSS_WEIGHTS, "articulation": 5.0, "shape": 1.0}
