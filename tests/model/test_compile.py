"""torch.export and torch.compile of the whole network with the registered scan operator (CPU)."""

import pytest
import torch

from handssca.model import build_model
from handssca.ops import backend_status

pytestmark = pytest.mark.skipif(backend_status()["numba"] is not None, reason="numba unavailable")


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18", "block": "ssca"}).eval()
    return model, torch.rand(1, 3, 128, 128)


def _close(out, ref, tol=1e-5):
    for k in ("vertices", "joints", "joints_img", "pose_aa", "betas"):
        torch.testing.assert_close(out[k], ref[k], rtol=tol, atol=tol, msg=k)


def test_torch_export_holds_the_scan_as_one_op_and_matches_eager(model_and_input):
    model, x = model_and_input
    with torch.no_grad():
        ref = model(x)
    program = torch.export.export(model, (x,))
    scans = [n for n in program.graph.nodes if n.op == "call_function" and "handssca.cross_scan_fwd" in str(n.target)]
    assert len(scans) == 2  # the spatial and the channel-plane cross-scans, each one fused node
    with torch.no_grad():
        _close(program.module()(x), ref)


def test_torch_compile_matches_eager(model_and_input):
    # aot_eager: dynamo + fake tensors + AOT autograd, what every backend traces through; inductor's
    # C++ compilation of the whole network takes minutes on 2 cores (the slow test below)
    model, x = model_and_input
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        _close(compiled(x), model(x))


@pytest.mark.slow
@pytest.mark.parametrize("backend, tol", [("aot_eager", 1e-4), ("inductor", 5e-2)])
def test_torch_compile_training_gradients(backend, tol):
    # aot_eager traces the registered op's autograd formula and must give eager's gradients; inductor
    # also rewrites the float32 arithmetic of the rest of the network (fused BN, reordered sums),
    # which moves the blocks' gradients by ~2.5% here (measured), hence its looser bound
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18", "block": "ssca"}).train()
    params = [model.block.self_attention.A_logs, model.block.self_attention.A_logs_ch]
    xs = torch.rand(2, 3, 128, 128)
    out = model(xs)
    g = torch.autograd.grad(out["vertices"].sum(), params)
    out_c = torch.compile(model, backend=backend)(xs)
    g_c = torch.autograd.grad(out_c["vertices"].sum(), params)
    _close(out_c, out, 1e-4)
    for a, b in zip(g_c, g):  # through the whole float32 network: compare as vectors
        assert float((a - b).norm() / b.norm()) < tol
