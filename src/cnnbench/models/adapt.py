"""Fitting an architecture to a dataset: input channels, classifier head, dropout, small inputs.

Small inputs: ImageNet CNNs downsample 32×, so at 28×28 they end on a 1×1 map or fail outright.
Each family declares ordered *stem steps* (remove the stem max-pool, halve the first conv's
stride, ...). ``adapt_to_input`` applies them one at a time, measuring the last feature map after
each on the meta device (shapes only, no arithmetic), and stops at the first that makes the map at
least ``MIN_FINAL_MAP``×``MIN_FINAL_MAP``. At the native size the map is already large enough and
nothing changes. Steps change strides and pooling only, never parameter shapes.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from cnnbench.errors import ModelError
from cnnbench.models.net import ClassifierNet

# The smallest last feature map accepted. One more stem change would give 4×4 at 28×28 but costs
# 4× the compute (resnet18, batch 128 on 2 CPU cores: 1.2 s at 2×2, 4.5 s at 4×4).
MIN_FINAL_MAP = 2
MLP_HIDDEN = 1000  # the Caltech-256 study's head: FC 1000 -> ReLU -> Dropout 0.5 -> FC classes
MLP_DROP_RATE = 0.5


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-conv weight ``(O, I, k, k)`` to ``in_chans`` input channels.

    One channel: sum over the I channels, so a grey image gives the response the original gives
    to that image replicated to RGB. Otherwise: tile the I channels and scale by I / in_chans
    (timm's rule); for a multiple of I this keeps the response to an image whose channels are all
    equal, otherwise it keeps it approximately.
    """
    out_ch, src_ch = weight.shape[:2]
    if in_chans == src_ch:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // src_ch)  # ceil
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (src_ch / in_chans)


def adapt_first_conv(model: ClassifierNet, in_chans: int) -> None:
    """Replace the first convolution with one taking ``in_chans`` channels (weights adapted, not re-drawn)."""
    conv = get_module(model, model.first_conv)
    if not isinstance(conv, nn.Conv2d):
        raise ModelError(f"{model.first_conv} is a {type(conv).__name__}, not a Conv2d; cannot adapt in_chans")
    if conv.in_channels == in_chans:
        return
    if conv.groups != 1:
        raise ModelError(f"{model.first_conv} is a grouped convolution; cannot adapt it to {in_chans} channels")
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_conv_weight(conv.weight, in_chans))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    set_module(model, model.first_conv, new)


def use_mlp_head(model: ClassifierNet, num_classes: int, drop_rate: float | None) -> None:
    """Replace the final layer with FC ``MLP_HIDDEN`` → ReLU → Dropout → FC ``num_classes``.

    The hidden layers are appended to ``pre_logits`` so that the architecture's own head layers
    keep their names (and load pretrained weights); the embedding becomes the ``MLP_HIDDEN`` units.
    The architecture's own dropout before its final layer is dropped.
    """
    hidden = nn.Linear(model.num_features, MLP_HIDDEN)
    old = model.pre_logits
    if isinstance(old, nn.Sequential):
        old.append(hidden)
        old.append(nn.ReLU(inplace=True))
    else:
        model.pre_logits = nn.Sequential(hidden, nn.ReLU(inplace=True))
    model.logits_before_pool = False
    model.logit_act = nn.Identity()
    model.head_drop = nn.Dropout(MLP_DROP_RATE if drop_rate is None else drop_rate)
    model.fc = nn.Linear(MLP_HIDDEN, num_classes)


def set_head_dropout(model: ClassifierNet, p: float) -> None:
    """Set the classifier dropout: every Dropout in the head, or a new one before ``fc`` if it has none."""
    drops = [
        m for m in itertools.chain(model.pre_logits.modules(), model.head_drop.modules()) if isinstance(m, nn.Dropout)
    ]
    for m in drops:
        m.p = p
    if not drops:
        model.head_drop = nn.Dropout(p) if p > 0 else nn.Identity()


class _FeaturesProbe(nn.Module):
    def __init__(self, model: ClassifierNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def meta_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Shape-only stand-ins for every parameter and buffer of ``module`` (for ``functional_call``)."""
    named = itertools.chain(
        module.named_parameters(remove_duplicate=False), module.named_buffers(remove_duplicate=False)
    )
    return {k: torch.empty_like(v, device="meta") for k, v in named}


def feature_map_shape(model: ClassifierNet, in_chans: int, hw: tuple[int, int]) -> tuple[int, int, int]:
    """``(C, h, w)`` of ``forward_features`` at input ``(in_chans, *hw)``, computed on the meta device.

    Raises:
        RuntimeError/ValueError: from torch when the input is too small for a layer.
    """
    probe = _FeaturesProbe(model)
    was_training = model.training
    model.eval()  # BN in train mode refuses a 1×1 map at batch 1
    try:
        x = torch.empty(1, in_chans, *hw, device="meta")
        with torch.no_grad():
            out = torch.func.functional_call(probe, meta_tensors(probe), (x,))
    finally:
        model.train(was_training)
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def _apply_step(model: ClassifierNet, step: tuple[str, str]) -> str:
    kind, path = step
    module = get_module(model, path)
    if kind == "pool":
        set_module(model, path, nn.Identity())
        return f"{path} ({type(module).__name__}) removed"
    if kind == "stride":
        old = tuple(module.stride)  # type: ignore[attr-defined]
        new = tuple(max(1, s // 2) for s in old)
        module.stride = new  # type: ignore[attr-defined]
        return f"{path} stride {old[0]}→{new[0]}"
    raise ValueError(f"unknown stem step {kind!r}")


def _try_shape(model: ClassifierNet, in_chans: int, hw: tuple[int, int]) -> tuple[tuple[int, int, int] | None, str]:
    try:
        return feature_map_shape(model, in_chans, hw), ""
    except (RuntimeError, ValueError) as exc:  # a pooling layer found its input too small
        return None, str(exc).splitlines()[0]


def adapt_to_input(
    model: ClassifierNet, in_chans: int, hw: tuple[int, int], name: str = "model"
) -> tuple[list[str], tuple[int, int, int]]:
    """Apply the model's stem steps until its last feature map is at least ``MIN_FINAL_MAP`` on each side.

    Returns:
        The human-readable changes (empty when none was needed) and the final ``(C, h, w)``.

    Raises:
        ModelError: when even every step leaves the map too small (input far below 28×28).
    """
    changes: list[str] = []
    shape, why = _try_shape(model, in_chans, hw)
    steps = list(model.stem_steps)
    while (shape is None or min(shape[1:]) < MIN_FINAL_MAP) and steps:
        changes.append(_apply_step(model, steps.pop(0)))
        shape, why = _try_shape(model, in_chans, hw)
    if shape is None or min(shape[1:]) < MIN_FINAL_MAP:
        got = f"a {shape[1]}×{shape[2]} map" if shape is not None else f"an error ({why})"
        raise ModelError(
            f"{name} at input {in_chans}×{hw[0]}×{hw[1]} ends on {got}"
            f"{' even after ' + '; '.join(changes) if changes else ''}; "
            f"a {MIN_FINAL_MAP}×{MIN_FINAL_MAP} final feature map is needed: use an input of at least 28×28"
        )
    changes.extend(model.adapt_head_to((shape[1], shape[2])))
    return changes, shape
