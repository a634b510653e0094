"""Depthwise convolutions padded explicitly on small CPU maps (models/cpu_conv.py)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cnnbench.models import PaddedDepthwiseConv2d, create_model, pad_small_depthwise


def _grads(conv: nn.Module, x: torch.Tensor, g: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = conv(x)
    gx, gw = torch.autograd.grad(out, [x, conv.weight], g)
    return out.detach(), gx, gw


@pytest.mark.parametrize(
    "channels,size,kernel,stride,channels_last",
    [
        (48, 2, 5, 1, True),  # MobileNetV3-Small's last 5x5 layers on 2x2 maps
        (24, 4, 5, 2, True),
        (16, 2, 3, 1, False),
        (16, 7, 5, 1, True),  # map larger than the kernel: the stock path
    ],
)
def test_padded_depthwise_matches_the_stock_layer(channels, size, kernel, stride, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    stock = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels).to(memory_format=fmt)
    padded = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels).to(memory_format=fmt)
    padded.load_state_dict(stock.state_dict())
    assert pad_small_depthwise(padded) == 1 and type(padded) is PaddedDepthwiseConv2d
    x = torch.randn(8, channels, size, size).contiguous(memory_format=fmt)
    g = torch.randn_like(stock(x))
    out, gx, gw = _grads(stock, x, g)
    out2, gx2, gw2 = _grads(padded, x, g)
    # same products summed in the same order for the output and the input gradient; the weight
    # gradient is summed in another order by the other oneDNN kernel
    assert torch.equal(out, out2) and torch.equal(gx, gx2)
    torch.testing.assert_close(gw2, gw, rtol=1e-5, atol=1e-5)


def test_only_zero_padded_depthwise_layers_are_converted():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: converted
        nn.Conv2d(8, 8, 3, padding=1),  # dense
        nn.Conv2d(8, 16, 3, padding=1, groups=4),  # grouped, not depthwise
        nn.Conv2d(8, 8, 3, padding=0, groups=8),  # nothing to pad
        nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"),
        nn.Conv2d(8, 8, 3, padding="same", groups=8),
    )
    assert pad_small_depthwise(model) == 1
    assert [type(m).__name__ for m in model] == ["PaddedDepthwiseConv2d"] + ["Conv2d"] * 5


def test_a_zoo_model_keeps_its_weights_and_outputs():
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=10, in_chans=1, input_size=28).eval()
    keys = list(model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    assert pad_small_depthwise(model) == 11  # every depthwise layer of MobileNetV3-Small
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert pad_small_depthwise(create_model("lenet5", num_classes=10, in_chans=1, input_size=28)) == 0


def test_onednn_takes_its_fast_weight_gradient_kernel_once_padded(tmp_path):
    """The reason for the class: oneDNN's depthwise weight-gradient kernel refuses an input smaller
    than the kernel (a GEMM per channel instead). Seen through ONEDNN_VERBOSE in a fresh process."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, torch
            from torch import nn
            from cnnbench.models import pad_small_depthwise
            conv = nn.Conv2d(64, 64, 5, 1, 2, groups=64).to(memory_format=torch.channels_last)
            if sys.argv[1] == "padded":
                pad_small_depthwise(conv)
            x = torch.randn(16, 64, 2, 2).contiguous(memory_format=torch.channels_last)
            conv(x).sum().backward()
            """
        )
    )
    impls = {}
    for variant in ("stock", "padded"):
        env = {**os.environ, "ONEDNN_VERBOSE": "1"}
        out = subprocess.run(
            [sys.executable, str(script), variant], env=env, capture_output=True, text=True, check=True
        )
        lines = [ln.split(",") for ln in out.stdout.splitlines() if ",exec,cpu,convolution," in ln]
        impls[variant] = {f[6] for f in lines if "backward_weights" in f}
    if not impls["stock"]:
        pytest.skip("this torch build prints no oneDNN verbose lines")
    assert any("gemm" in i for i in impls["stock"]), impls  # the slow fallback this module avoids
    assert impls["padded"] and not any("gemm" in i for i in impls["padded"]), impls


@pytest.mark.slow  # two optimiser steps of MobileNetV3-Small
def test_cpu_training_pads_and_says_so(tmp_path):
    from cnnbench.engine import TrainConfig, fit

    cfg = TrainConfig(
        model="mobilenet_v3_small",
        data="synthetic",
        epochs=1,
        max_steps=2,
        max_val_samples=64,
        max_test_samples=64,
        device="cpu",
        progress=False,
    )
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert any(n.startswith("CPU: 11 depthwise convolutions pad") for n in summary["notes"]), summary["notes"]
    # the checkpoint is the stock layer's state_dict: a plain model loads it
    from cnnbench.runs import build_run_model

    model = build_run_model(tmp_path / "run")
    assert not any(isinstance(m, PaddedDepthwiseConv2d) for m in model.modules())
