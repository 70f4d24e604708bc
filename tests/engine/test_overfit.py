"""The whole network and its losses fit 32 fixed synthetic images: a broken gradient path fails here.

The user's path: the synthetic CPU config (``load_config("synthetic")``: HandSSCA with the SSCA block,
ResNet-18 at 128 x 128, bf16 autocast where the CPU has it, the config's loss terms) trained by the
trainer on 32 images, then the training images evaluated in eval mode with the official PA-MPJPE
(``procrustes_align``, the FreiHAND/HO3D ``align_w_scale``).
"""

import numpy as np
import pytest
import torch

from handssca.config import load_config
from handssca.data.factory import build_dataset
from handssca.data.loader import make_loader
from handssca.engine.evaluate import compute_metrics, predict
from handssca.engine.trainer import train
from handssca.environment import cpu_has_bf16
from handssca.model.checkpoint import load_model

IMAGES = 32
EPOCHS = 150  # 600 steps of 8; the learning rate drops 10x for the last 30 epochs


@pytest.mark.slow
def test_the_full_model_overfits_32_synthetic_images(tmp_path):
    cfg = load_config(
        "synthetic",
        [
            f"data.train_size={IMAGES}",
            "data.val_size=0",
            "data.num_workers=0",
            f"train.epochs={EPOCHS}",
            "train.batch_size=8",
            "train.lr=1.0e-3",
            f"train.lr_milestones=[{EPOCHS - 30}]",
            "train.lr_factor=0.1",
            "train.time_budget_s=null",
            "train.checkpoint_every=0",
            "train.tensorboard=false",
            f"train.amp={str(bool(cpu_has_bf16())).lower()}",
            f"train.out_dir={tmp_path}",
        ],
    )
    summary = train(cfg, progress=False)
    assert summary["stopped"] is None and summary["step"] == EPOCHS * IMAGES // 8

    model = load_model(tmp_path / "last.pt")
    images = build_dataset(cfg, "train")  # augment is off in this config: the very images trained on
    with torch.no_grad():
        preds = predict(model, make_loader(images, IMAGES), torch.device("cpu"), progress=False)
    m = compute_metrics(preds, model.hand)
    print(f"training-set PA-MPJPE {m['pa_mpjpe_mm']:.2f} mm (mean pose {m['pa_mpjpe_mm_meanpose']:.2f} mm)")
    assert len(preds.gt["joints_cam"]) == IMAGES
    assert m["pa_mpjpe_mm"] < 3.0, m
    assert m["pa_mpjpe_mm"] < 0.3 * m["pa_mpjpe_mm_meanpose"], m
    assert np.isfinite(m["mpjpe_rr_mm"])
