"""Optimisers, with weight decay kept off norm and bias parameters, and an EMA of weights."""

from __future__ import annotations

import copy

import torch

from cnnbench.engine.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, capturable: bool = False):
    """SGD (momentum, Nesterov), Adam or AdamW over the model's parameter groups.

    Groups come from ``cnnbench.models.param_groups``: no weight decay on 1-D parameters (norms,
    biases), and with pretrained weights a backbone group at ``lr * backbone_lr_scale``. Each group
    keeps its ``lr_scale`` so the schedule can set ``lr = lr_at(step) * lr_scale``.
    """
    from cnnbench.models import param_groups

    scale = cfg.backbone_lr_scale if cfg.pretrained is not None else 1.0
    groups = param_groups(model, lr=cfg.lr, backbone_lr_scale=scale, weight_decay=cfg.weight_decay)
    for g in groups:
        g.setdefault("lr_scale", g["lr"] / cfg.lr)
    on_gpu = device.type == "cuda"
    # fused kernels on a GPU: one launch for the whole update; capturable keeps lr/step on the device
    # so the update can live inside a CUDA graph.
    # On the CPU, foreach: the same arithmetic as the per-parameter loop (bit-identical updates), a few
    # kernels for all parameters instead of ~10 per tensor (LeNet-5's step 5-10 % faster; not fused,
    # whose CPU kernel rounds differently).
    extra: dict = {"foreach": True}
    if on_gpu:
        extra = {"capturable": True, "foreach": True} if capturable else {"fused": True}
    if cfg.optimizer == "sgd":
        extra.pop("capturable", None)
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, **extra
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    if capturable and on_gpu:
        # the lr lives on the device so a captured step reads the value set before each replay
        for g in groups:
            g["lr"] = torch.tensor(float(g["lr"]), device=device)
    return cls(groups, lr=cfg.lr, **extra)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        value = lr * group.get("lr_scale", 1.0)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)  # capturable optimisers keep lr as a device tensor
        else:
            group["lr"] = value


class ModelEma:
    """Exponential moving average of weights (and a copy of buffers), updated after each step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        ema_p = [p for p in self.module.parameters() if p.dtype.is_floating_point]
        src_p = [p for p in model.parameters() if p.dtype.is_floating_point]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
