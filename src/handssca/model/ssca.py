"""The SSCA (S3C) block: pre-norm residual SS2D with a spatial and a channel-plane 4-direction scan.

Shapes at 256 input: x (B, 256, 32, 32). Inside, d_inner = 512. The spatial branch scans the
32x32 plane in 4 directions (row-major, column-major and their reverses; L = 1024, D = 4x512).
The channel-plane branch permutes (B, 512, H, W) to (B, W, 512, H): the spatial width W becomes
the SSM feature dimension and the sequence runs over the (channel, row) plane (L = 512 H = 16384,
D = 4W). Outputs of both are summed, normalised, gated by SiLU(z) and projected back.
``channel_branch=False`` gives the SSA ablation (spatial scan only). Parameter names follow the
official ``S3C.self_attention`` module so that its checkpoints convert by renaming only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from handssca.ops import selective_scan
from handssca.ops.selective_scan import resolve_backend
from handssca.ops.selective_scan.cross_numba import KERNEL_ORDER
from handssca.ops.selective_scan.registered import cross_scan_op


def _scan_dtype(x: torch.Tensor) -> torch.dtype:
    """The scan runs in float32 (also under autocast), or float64 for a float64 map."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def cross_scan_unfused(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """VMamba's 4-direction selective scan of a (B, C, H, W) map, summed back in row-major order,
    written out: the four orders are copied, scanned as 4C channels of one selective scan, and flipped
    and transposed back. Any scan backend; the form ONNX export uses and the fused path's test reference.

    x_proj_weight (4, R+2N, C); dt_projs_weight (4, C, R); dt_projs_bias (4, C); A_logs (4C, N);
    Ds (4C). Returns (B, C, H*W).
    """
    b, c, h, w = x.shape
    length = h * w
    nstate = A_logs.shape[1]
    rank = dt_projs_weight.shape[2]
    rows = x.reshape(b, c, length)
    cols = x.transpose(2, 3).reshape(b, c, length)
    xs = torch.stack([rows, cols], dim=1)
    xs = torch.cat([xs, xs.flip(-1)], dim=1)  # (b, 4, c, l)
    # matmul, not einsum: the same products, and ONNX gets MatMul nodes (onnxruntime's Einsum is slow)
    x_dbl = torch.matmul(x_proj_weight, xs)  # (b, 4, r + 2n, l)
    dts, Bs, Cs = torch.split(x_dbl, [rank, nstate, nstate], dim=2)
    dts = torch.matmul(dt_projs_weight, dts)  # (b, 4, c, l)
    dtype = _scan_dtype(x)
    y = selective_scan(
        xs.reshape(b, -1, length).to(dtype),
        dts.reshape(b, -1, length).to(dtype),
        -torch.exp(A_logs.to(dtype)),
        Bs.to(dtype),
        Cs.to(dtype),
        Ds.to(dtype),
        delta_bias=dt_projs_bias.reshape(-1).to(dtype),
        delta_softplus=True,
        backend=backend,
    ).view(b, 4, c, length)
    inv = y[:, 2:4].flip(-1)
    wh = y[:, 1].view(b, c, w, h).transpose(2, 3).reshape(b, c, length)
    invwh = inv[:, 1].view(b, c, w, h).transpose(2, 3).reshape(b, c, length)
    return y[:, 0] + inv[:, 0] + wh + invwh


def cross_scan_fused(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
) -> torch.Tensor:
    """:func:`cross_scan_unfused` with numba kernels that read the four orders in place (CPU).

    The kernels take the map in row-major and in column-major order and read each forwards and
    backwards; the projections are per position, so they are computed at each source's positions;
    the kernel adds a source's two directions into one output, and the column-major one is added
    back transposed: one transposed copy in and one out, no flips or concatenations.
    """
    b, c, h, w = x.shape
    length = h * w
    nstate = A_logs.shape[1]
    rank = dt_projs_weight.shape[2]
    dtype = _scan_dtype(x)
    order = list(KERNEL_ORDER)  # VMamba's direction order -> the kernels' (rows, rows rev., cols, cols rev.)
    u2 = x.new_empty((b, 2, c, length), dtype=dtype)
    u2[:, 0].view(b, c, h, w).copy_(x)  # one (strided) copy per order, also for a permuted map
    u2[:, 1].view(b, c, w, h).copy_(x.transpose(2, 3))
    xw = x_proj_weight[order].to(dtype).view(2, 2 * (rank + 2 * nstate), c)  # per source, its two directions
    x_dbl = torch.matmul(xw, u2).view(b, 4, rank + 2 * nstate, length)
    dts, Bs, Cs = torch.split(x_dbl, [rank, nstate, nstate], dim=2)
    dts = torch.matmul(dt_projs_weight[order].to(dtype), dts)  # (b, 4, c, l)
    dts, Bs, Cs = dts.to(dtype), Bs.to(dtype), Cs.to(dtype)  # bf16 under autocast: the scan stays float32
    A = -torch.exp(A_logs.view(4, c, nstate)[order].reshape(4 * c, nstate).to(dtype))
    D = Ds.view(4, c)[order].reshape(-1).to(dtype)
    bias = dt_projs_bias[order].reshape(-1).to(dtype)
    y2 = cross_scan_op(u2, dts, A, Bs, Cs, D, bias, True)
    return torch.add(y2[:, 0].view(b, c, h, w), y2[:, 1].view(b, c, w, h).transpose(2, 3)).view(b, c, length)


def cross_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """The 4-direction scan: fused (:func:`cross_scan_fused`) where the scan backend resolves to
    ``numba``, else :func:`cross_scan_unfused` with that backend. Returns (B, C, H*W) in float32
    (float64 for float64 maps)."""
    if resolve_backend(backend, x.device) == "numba":
        return cross_scan_fused(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    return cross_scan_unfused(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, backend)


def _dt_bias(size: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> torch.Tensor:
    """Inverse-softplus of dt ~ log-uniform[dt_min, dt_max] (the official/mamba initialisation)."""
    dt = torch.exp(torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class SS2D(nn.Module):
    """The state-space core of the SSCA block. Input and output (B, H, W, d_model)."""

    def __init__(
        self,
        d_model: int = 256,
        width: int = 32,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        channel_branch: bool = True,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_model, self.width, self.d_state = d_model, width, d_state
        self.d_inner = d_inner = expand * d_model
        self.dt_rank = rank = math.ceil(d_model / 16)
        self.channel_branch = channel_branch
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=True)
        self.act = nn.SiLU()
        self._make_branch("", d_inner, rank, d_state)
        if channel_branch:
            self._make_branch("_ch", width, rank, d_state)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def _make_branch(self, suffix: str, dim: int, rank: int, nstate: int) -> None:
        bound = 1 / math.sqrt(dim)  # nn.Linear's default kaiming-uniform(a=sqrt 5) bound
        self.register_parameter(
            f"x_proj_weight{suffix}", nn.Parameter(torch.empty(4, rank + 2 * nstate, dim).uniform_(-bound, bound))
        )
        self.register_parameter(
            f"dt_projs_weight{suffix}", nn.Parameter(torch.empty(4, dim, rank).uniform_(-(rank**-0.5), rank**-0.5))
        )
        self.register_parameter(f"dt_projs_bias{suffix}", nn.Parameter(_dt_bias(4 * dim).view(4, dim)))
        a = torch.log(torch.arange(1, nstate + 1, dtype=torch.float32)).repeat(4 * dim, 1)
        self.register_parameter(f"A_logs{suffix}", nn.Parameter(a))
        self.register_parameter(f"Ds{suffix}", nn.Parameter(torch.ones(4 * dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        if self.channel_branch and w != self.width:
            raise ValueError(
                f"SSCA: feature width {w} does not match the block's width {self.width} "
                f"(set by the input size: width = input_size / 8)"
            )
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))  # (b, d, h, w)
        y = cross_scan(
            x, self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds, self.scan_backend
        )
        y = y.transpose(1, 2).reshape(b, h, w, self.d_inner)
        if self.channel_branch:
            xc = x.permute(0, 3, 1, 2)  # (b, w, d, h): width is the feature dim, (d, h) the plane
            yc = cross_scan(
                xc,
                self.x_proj_weight_ch,
                self.dt_projs_weight_ch,
                self.dt_projs_bias_ch,
                self.A_logs_ch,
                self.Ds_ch,
                self.scan_backend,
            )
            y = y + yc.view(b, w, self.d_inner, h).permute(0, 3, 1, 2)
        y = self.out_norm(y.to(z.dtype)) * F.silu(z)
        return self.out_proj(y)


class SSCA(nn.Module):
    """Pre-norm residual SS2D on a feature map: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self, hidden_dim: int = 256, width: int = 32, channel_branch: bool = True, scan_backend: str = "auto", **kwargs
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = SS2D(
            hidden_dim, width, channel_branch=channel_branch, scan_backend=scan_backend, **kwargs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = x.permute(0, 2, 3, 1)
        out = inp + self.self_attention(self.ln_1(inp))
        return out.permute(0, 3, 1, 2)
