"""Fine-tuning helpers: the classifier layer, a frozen backbone, optimiser parameter groups.

Backbone = parameters under ``features.``; head = the rest (``pre_logits``, ``fc``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnbench.errors import ModelError
from cnnbench.models.net import ClassifierNet, unwrap_model


def _registry_model(model: nn.Module, what: str) -> ClassifierNet:
    inner = unwrap_model(model)
    if not isinstance(inner, ClassifierNet):
        raise ModelError(f"{what} needs a model from cnnbench.models.create_model, got {type(inner).__name__}")
    return inner


def get_classifier(model: nn.Module) -> nn.Module:
    """The final classification layer (``nn.Linear``; a 1×1 ``nn.Conv2d`` for SqueezeNet)."""
    return _registry_model(model, "get_classifier").fc


def freeze_backbone(model: nn.Module, frozen: bool = True) -> None:
    """Freeze (or unfreeze) the backbone: no gradients, and in train mode its BN/dropout stay in eval.

    The head stays trainable. Frozen parameters stay in the optimiser groups of ``param_groups``,
    so unfreezing for a second phase needs no new optimiser (they simply have no gradient before).
    """
    net = _registry_model(model, "freeze_backbone")
    for p in net.features.parameters():
        p.requires_grad_(not frozen)
    net.backbone_frozen = frozen
    net.train(net.training)  # re-apply the mode so the backbone's BN switches now


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # Biases and every 1-D tensor (BN/LN scales and shifts, layer-scale gammas) are not decayed.
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(
    model: nn.Module, lr: float, backbone_lr_scale: float = 1.0, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Optimiser parameter groups: head / backbone × decay / no decay.

    Args:
        lr: learning rate of the head.
        backbone_lr_scale: the backbone's learning rate is ``lr * backbone_lr_scale`` (e.g. 0.1 for
            the second phase of two-phase fine-tuning).
        weight_decay: applied to weights of conv and linear layers only.

    Returns:
        Non-empty groups for ``torch.optim``, each with ``name``, ``params``, ``lr``, ``lr_scale``
        (for schedulers that set ``lr = lr_at(step) * lr_scale``) and ``weight_decay``. Every
        parameter is in exactly one group, trainable or not.
    """
    net = unwrap_model(model)
    is_registry = isinstance(net, ClassifierNet)
    groups: dict[str, dict[str, Any]] = {}
    for name, p in net.named_parameters():
        part = "backbone" if is_registry and name.startswith("features.") else "head"
        no_decay = _no_decay(name, p)
        key = f"{part}_no_decay" if no_decay else part
        scale = backbone_lr_scale if part == "backbone" else 1.0
        group = groups.setdefault(
            key,
            {
                "name": key,
                "params": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else weight_decay,
            },
        )
        group["params"].append(p)
    order = ("head", "head_no_decay", "backbone", "backbone_no_decay")
    return [groups[k] for k in order if k in groups]
