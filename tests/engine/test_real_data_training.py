"""`handssca train` and `handssca evaluate` on tiny real-format datasets (slow: a few CPU steps each)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from handssca.cli import main

pytest.importorskip("smplx")

from tests.data.real_formats import (  # noqa: E402
    ManoFiles,
    write_dexycb,
    write_dexycb_handoccnet,
    write_freihand,
    write_ho3d,
    write_ho3d_handoccnet,
)

TINY = [
    "model.input_size=128",
    "model.backbone=resnet18",
    "train.batch_size=2",
    "train.max_steps=2",
    "data.num_workers=0",
    "train.tensorboard=false",
    "eval.batch_size=2",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, annotations, submission",
    [
        ("freihand", "official", "pred.json"),
        ("ho3d", "official", "pred.zip"),
        ("ho3d", "handoccnet", "pred.zip"),
        ("dexycb", "official", "results.txt"),
        ("dexycb", "handoccnet", "results.txt"),
    ],
)
def test_train_and_evaluate_write_the_benchmark_file(tmp_path, name, annotations, submission):
    mano = ManoFiles(tmp_path / "mano")
    root = tmp_path / name
    if name == "freihand":
        write_freihand(root, mano)
        n_test = 2
    elif name == "ho3d":
        write_ho3d_handoccnet(root, mano, write_ho3d(root, mano))
        n_test = 2
    else:
        write_dexycb_handoccnet(root, mano, write_dexycb(root, mano))
        n_test = 1
    run = tmp_path / "run"
    args = [
        "--config",
        name,
        f"data.root={root}",
        f"model.hand_model={mano.right_path}",
        f"data.annotations={annotations}",
        f"train.out_dir={run}",
        *TINY,
    ]
    assert main(["train", "--no-progress", *args]) == 0
    assert (run / "last.pt").is_file()
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "test", "--out", str(out), "--no-progress"])
        == 0
    )
    path = out / submission
    assert path.is_file()
    if submission == "pred.json":
        joints, verts = json.loads(path.read_text())
        assert np.asarray(joints).shape == (n_test, 21, 3) and np.asarray(verts).shape == (n_test, 778, 3)
    elif submission == "pred.zip":
        with zipfile.ZipFile(path) as zf:
            joints, verts = json.loads(zf.read("pred.json"))
        assert np.asarray(joints).shape == (n_test, 21, 3) and np.asarray(verts).shape == (n_test, 778, 3)
    else:
        lines = path.read_text().splitlines()
        assert len(lines) == n_test and len(lines[0].split(",")) == 64
