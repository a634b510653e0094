"""``summarize``: layer table, parameters, size, FLOPs and final feature map at an input size.

Shapes and FLOPs come from one forward pass on the meta device (no arithmetic, no memory), so a
summary of VGG-19 at 224×224 takes milliseconds. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode``: convolutions (grouped and depthwise counted
correctly), matrix products and attention, as 2 × multiply-accumulates, for one image and the
forward pass; batch norm, activations and pooling are not counted (they are a few percent).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnbench.models.adapt import meta_tensors
from cnnbench.models.net import ClassifierNet, unwrap_model

_SKIP = (nn.Identity, nn.Flatten)


@dataclass
class ModelSummary:
    """Size and cost of a model at one input shape."""

    model: str
    input_shape: list[int]  # [C, H, W]
    params: int
    trainable_params: int
    size_mb: float  # fp32 state_dict (params and buffers) in MiB (2**20 bytes)
    flops: int  # FLOPs = 2 × MACs of conv/linear layers, one image, forward pass
    final_feature_map: list[int]  # [C, h, w] of forward_features
    num_features: int | None  # width of forward_head(pre_logits=True)
    num_classes: int | None
    adaptation: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # other changes to the library's model (ModelMeta.notes)
    layers: list[dict[str, Any]] = field(default_factory=list)  # name, type, depth, output_shape, params

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["flops_unit"] = "FLOPs = 2 x MACs, forward pass, one image"
        return out


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameters, shared tensors counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def state_dict_mb(model: nn.Module) -> float:
    """Size of the state_dict saved in fp32 (floating tensors 4 bytes, others their own size), in MiB."""
    total = 0
    for t in model.state_dict().values():
        total += t.numel() * (4 if t.is_floating_point() else t.element_size())
    return total / 2**20


class _Probe(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self.model, "forward_features"):
            f = self.model.forward_features(x)
            return f, self.model.forward_head(f)
        out = self.model(x)
        return out, out


def _shape(out: Any) -> list[int] | None:
    if isinstance(out, torch.Tensor):
        return list(out.shape[1:])
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return list(out[0].shape[1:])
    return None


def _layer_hooks(model: nn.Module, depth: int, rows: list[dict[str, Any]]) -> list[Any]:
    handles = []
    seen: set[int] = set()
    stack: list[int] = []  # rows of the modules currently inside their forward
    for name, module in model.named_modules():
        if not name or name.count(".") + 1 > depth or isinstance(module, _SKIP):
            continue

        def pre(mod: nn.Module, args: Any, _name: str = name) -> None:
            first = id(mod) not in seen
            seen.add(id(mod))
            rows.append(
                {
                    "name": _name,
                    "type": type(mod).__name__,
                    "depth": _name.count(".") + 1,
                    "output_shape": None,
                    # recursive count on the first call only, so the depth-1 rows sum to the total
                    "params": sum(p.numel() for p in mod.parameters()) if first else 0,
                }
            )
            stack.append(len(rows) - 1)

        def post(mod: nn.Module, args: Any, out: Any) -> None:
            rows[stack.pop()]["output_shape"] = _shape(out)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    return handles


def summarize(
    model: nn.Module,
    input_shape: tuple[int, int, int] | list[int],
    device: str | torch.device = "meta",
    layers: bool = True,
    depth: int = 3,
) -> ModelSummary:
    """Summarise ``model`` at ``input_shape`` = (C, H, W).

    Args:
        device: where the probe pass runs; "meta" (default) computes shapes and FLOPs without
            arithmetic; a real device runs the model where its weights are.
        layers: include the layer table (modules up to ``depth`` levels, in call order).
    """
    net = unwrap_model(model)
    c, h, w = (int(v) for v in input_shape)
    n_params, n_train = count_params(net)
    rows: list[dict[str, Any]] = []
    probe = _Probe(net)
    handles = _layer_hooks(net, depth, rows) if layers else []
    was_training = net.training
    net.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            if str(device) == "meta":
                x = torch.empty(1, c, h, w, device="meta")
                feats, _ = torch.func.functional_call(probe, meta_tensors(probe), (x,))
            else:
                x = torch.zeros(1, c, h, w, device=device)
                feats, _ = probe(x)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    meta = getattr(net, "cnnbench_meta", None)
    return ModelSummary(
        model=meta.name if meta is not None else type(net).__name__,
        input_shape=[c, h, w],
        params=n_params,
        trainable_params=n_train,
        size_mb=round(state_dict_mb(net), 4),
        flops=int(counter.get_total_flops()),
        final_feature_map=list(feats.shape[1:]),
        num_features=net.num_features if isinstance(net, ClassifierNet) else None,
        num_classes=net.num_classes if isinstance(net, ClassifierNet) else None,
        adaptation=list(meta.adaptation) if meta is not None else [],
        notes=list(getattr(meta, "notes", [])) if meta is not None else [],
        layers=rows,
    )
