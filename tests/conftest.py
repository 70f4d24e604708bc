import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained ResNet-18 HandSSCA at 128, saved once for the session: the inference, predict and web-page
    tests only need a network that runs (its meshes are nowhere near the hands)."""
    from handssca.model import build_model
    from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18"}).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", checkpoint_dict(model))
