"""Convolutions padded explicitly on CPU maps smaller than their kernel (models/cpu_conv.py)."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from cnnbench.models import PaddedConv2d, create_model, pad_small_maps


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
        (16, 7, 5, 1, True),  # map larger than the kernel: left as it is
        (32, 2, 3, 1, True),  # a dense layer (ResNet-18's last stage on 2x2 maps)
    ],
)
def test_padded_convs_matches_the_stock_layer(channels, size, kernel, stride, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    groups = 1 if channels == 32 else channels
    stock = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=groups).to(memory_format=fmt)
    padded = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=groups).to(memory_format=fmt)
    padded.load_state_dict(stock.state_dict())
    converted = pad_small_maps(padded, (channels, size, size))
    assert converted == (1 if size < kernel else 0)
    assert type(padded) is (PaddedConv2d if size < kernel else nn.Conv2d)
    x = torch.randn(8, channels, size, size).contiguous(memory_format=fmt)
    g = torch.randn_like(stock(x))
    out, gx, gw = _grads(stock, x, g)
    out2, gx2, gw2 = _grads(padded, x, g)
    # the same forward kernel over the same products; the gradients come from other oneDNN kernels
    # that sum in another order (for depthwise layers the input gradient is still bit-identical)
    assert torch.equal(out, out2)
    if groups > 1:
        assert torch.equal(gx, gx2)
    torch.testing.assert_close(gx2, gx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw2, gw, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "layer,converted",
    [
        (nn.Conv2d(8, 8, 3, padding=1, groups=8), True),  # depthwise
        (nn.Conv2d(8, 8, 3, padding=1), True),  # dense
        (nn.Conv2d(8, 16, 3, padding=1, groups=4), True),  # grouped
        (nn.Conv2d(8, 8, 1), False),  # 1x1: never smaller than its input
        (nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"), False),
        (nn.Conv2d(8, 8, 3, padding="same", groups=8), False),
    ],
)
def test_only_zero_padded_layers_on_small_inputs_are_converted(layer, converted):
    assert pad_small_maps(layer, (8, 2, 2)) == int(converted)
    assert type(layer) is (PaddedConv2d if converted else nn.Conv2d)
    assert pad_small_maps(nn.Conv2d(8, 8, 3, padding=1), (8, 3, 3)) == 0  # as large as the kernel


def test_a_zoo_model_keeps_its_weights_and_outputs():
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=10, in_chans=1, input_size=28).eval()
    keys = list(model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    training = model.train().training
    # its seven 5x5 depthwise layers on 4x4 and 2x2 maps, found by a blank forward pass
    assert pad_small_maps(model, (1, 28, 28)) == 7
    assert model.training == training
    model.eval()
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.equal(model(x), before)
    broken = create_model("resnet18", num_classes=10, in_chans=1, input_size=28)
    assert pad_small_maps(broken, (3, 28, 28)) == 0  # a forward that fails converts nothing, raises nothing
    assert pad_small_maps(create_model("lenet5", num_classes=10, in_chans=1, input_size=28), (1, 28, 28)) == 0


_PROBE = """
import sys, torch
from torch import nn
from cnnbench.models import onednn_refuses_small_maps, pad_small_maps
print("refuses", onednn_refuses_small_maps())
conv = nn.Conv2d(64, 64, 5, 1, 2, groups=64).to(memory_format=torch.channels_last)
if sys.argv[1] == "padded":
    pad_small_maps(conv, (64, 2, 2))
x = torch.randn(16, 64, 2, 2).contiguous(memory_format=torch.channels_last)
conv(x).sum().backward()
"""


def _weight_gradient_kernels(script, variant: str, isa: str | None) -> tuple[bool, bool]:
    """In a fresh process (oneDNN reads its settings once): whether cnnbench would pad, and whether
    oneDNN computed the depthwise layer's weight gradient with a GEMM (seen through ONEDNN_VERBOSE)."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        env.pop(name, None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    out = subprocess.run([sys.executable, str(script), variant], env=env, capture_output=True, text=True, check=True)
    kernels = []
    for line in out.stdout.splitlines():
        fields = line.split(",")
        if ",exec,cpu,convolution," in line and "backward_weights" in fields:
            kernels.append(fields[fields.index("convolution") + 1])  # the implementation's name
    if not kernels:
        pytest.skip("this torch build prints no oneDNN verbose lines")
    return "refuses True" in out.stdout, any("gemm" in k for k in kernels)


@pytest.mark.slow  # up to six fresh Python processes with torch
@pytest.mark.parametrize("isa", [None, "AVX2", "AVX"], ids=["this-cpu", "avx2", "avx"])
def test_padding_is_chosen_exactly_where_it_avoids_onednns_fallback(tmp_path, isa):
    """The reason for the class: oneDNN's AVX2 weight-gradient kernel refuses an input smaller than the
    kernel (a GEMM per channel instead) and takes it padded; its AVX-512 kernel takes it either way,
    and below AVX2 both are GEMMs. cnnbench pads exactly where padding turns the GEMM into the direct
    kernel: on this CPU as it is, capped at AVX2 (as an AVX2-only CPU runs oneDNN) and at AVX."""
    from cnnbench.models import cpu_vector_isa

    if isa and cpu_vector_isa() == "older":
        pytest.skip("this CPU has no AVX2: the cap cannot raise oneDNN to it")
    script = tmp_path / "probe.py"
    script.write_text(_PROBE)
    refuses, stock_gemm = _weight_gradient_kernels(script, "stock", isa)
    _, padded_gemm = _weight_gradient_kernels(script, "padded", isa)
    assert refuses == (stock_gemm and not padded_gemm), (stock_gemm, padded_gemm)
    if isa:  # what each cap must give on any AVX2 or AVX-512 CPU
        assert refuses == (isa == "AVX2")


def test_the_isa_cap_decides_where_the_cpu_allows(monkeypatch):
    from cnnbench.models import cpu_vector_isa, onednn_refuses_small_maps

    hardware = cpu_vector_isa()
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert onednn_refuses_small_maps() == (hardware == "avx2")
    for cap, expected in (("avx2", True), ("AVX2_VNNI", True), ("AVX", False), ("SSE41", False), ("", None)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)  # "" = unset: the hardware decides
        want = hardware == "avx2" if expected is None else expected and hardware != "older"
        assert onednn_refuses_small_maps() == want, cap
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # a cap above an AVX2 CPU leaves it AVX2
    assert onednn_refuses_small_maps() == (hardware == "avx2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # oneDNN's older name for the same setting
    assert onednn_refuses_small_maps() == (hardware != "older")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # steers PyTorch's kernels, not oneDNN's
    assert cpu_vector_isa() == hardware
    monkeypatch.setattr("platform.machine", lambda: "aarch64")  # not measured there: never pads
    assert cpu_vector_isa() == "older" and not onednn_refuses_small_maps()


@pytest.mark.slow  # two optimiser steps of MobileNetV3-Small
def test_cpu_training_pads_and_says_so(tmp_path, monkeypatch):
    from cnnbench.engine import TrainConfig, fit

    # padded as on an AVX2 CPU, whatever this one is (patched where the engine looks it up: setting
    # ONEDNN_MAX_CPU_ISA here would cap oneDNN for the rest of this process if it had not started yet)
    monkeypatch.setattr("cnnbench.models.onednn_refuses_small_maps", lambda: True)

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
    assert any(n.startswith("CPU: 7 convolutions pad their input") for n in summary["notes"]), summary["notes"]
    # the checkpoint is the stock layer's state_dict: a plain model loads it
    from cnnbench.checkpoints import build_run_model

    model = build_run_model(tmp_path / "run")
    assert not any(isinstance(m, PaddedConv2d) for m in model.modules())
