"""A tiny CPU training setup (ResNet-18 at 128, a few synthetic samples) shared by the engine tests."""

from handssca.config import load_config

TINY = [
    "model.input_size=128",
    "model.backbone=resnet18",
    "data.train_size=8",
    "data.val_size=2",
    "data.test_size=4",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.tensorboard=false",
    "train.lr_milestones=[1]",
    "eval.batch_size=4",
]


def tiny(tmp_path, *extra):
    return load_config(None, [*TINY, f"train.out_dir={tmp_path}", *extra])
