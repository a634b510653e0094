"""The one model contract every registered architecture follows, whatever library built it.

``ClassifierNet`` splits a classifier into a backbone (``features``) and a head
(``global_pool`` → ``pre_logits`` → ``head_drop`` → ``fc``), like timm's models:

    forward(x) == forward_head(forward_features(x))
    forward_features(x): (B, C_in, H, W) -> (B, C, h, w)     the last feature map
    forward_head(f, pre_logits=True): -> (B, num_features)    the embedding, i.e. the input of ``fc``
    forward_head(f): -> (B, num_classes)                      the logits

Backbone parameters are those under ``features.``; everything else is the head. Fine-tuning
(freeze, learning-rate groups) and analysis rely on these names alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class LoadReport:
    """What happened when pretrained weights were loaded into a model."""

    path: str
    loaded: int  # tensors copied from the file
    total: int  # tensors in the model's state_dict
    missing: list[str] = field(default_factory=list)  # model keys the file did not provide (new head, ...)
    unexpected: list[str] = field(default_factory=list)  # file keys the model has no place for
    skipped: list[str] = field(default_factory=list)  # file keys left out on purpose, with the reason
    adapted: list[str] = field(default_factory=list)  # file tensors changed to fit (first conv to in_chans)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelMeta:
    """How a model was built: enough to rebuild it and to explain it in a report."""

    name: str
    source: str  # "torchvision" | "timm" | "cnnbench"
    input_size: tuple[int, int]  # (H, W) the model was adapted for
    in_chans: int
    num_classes: int
    head: str = "linear"
    drop_rate: float | None = None
    adaptation: list[str] = field(default_factory=list)  # empty at the architecture's native size
    notes: list[str] = field(default_factory=list)  # other changes to the library's model, with the reason
    final_feature_map: tuple[int, int, int] | None = None  # (C, h, w) of forward_features at input_size
    pretrained: str | None = None  # the weights file loaded, if any
    load_report: LoadReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ClassifierNet(nn.Module):
    """A CNN classifier with timm's ``forward_features`` / ``forward_head`` contract.

    Args:
        features: the backbone, ``(B, C_in, H, W) -> (B, C, h, w)``.
        global_pool: ``(B, C, h, w) -> (B, D)`` (pool and flatten; VGG/AlexNet keep their 7×7/6×6 pool).
        fc: the final classification layer, ``nn.Linear(num_features, num_classes)``; with
            ``logits_before_pool`` a 1×1 ``nn.Conv2d`` applied to the map (SqueezeNet).
        pre_logits: ``(B, D) -> (B, num_features)``; hidden FC layers of the head (VGG fc6/fc7, ...).
        head_drop: dropout right before ``fc``.
        first_conv: dotted path of the first convolution (adapted to ``in_chans``).
        stem_steps: ordered small-input changes, ``("pool", path)`` removes a pooling layer and
            ``("stride", path)`` halves a convolution's stride; applied one at a time until the last
            feature map is at least 2×2 (see ``cnnbench.models.adapt``).
        logits_before_pool: SqueezeNet's head: 1×1 conv → ReLU → average pool.
    """

    def __init__(
        self,
        features: nn.Module,
        global_pool: nn.Module,
        fc: nn.Module,
        *,
        pre_logits: nn.Module | None = None,
        head_drop: nn.Module | None = None,
        first_conv: str,
        stem_steps: tuple[tuple[str, str], ...] = (),
        logits_before_pool: bool = False,
    ) -> None:
        super().__init__()
        self.features = features
        self.global_pool = global_pool
        self.pre_logits = pre_logits if pre_logits is not None else nn.Identity()
        self.head_drop = head_drop if head_drop is not None else nn.Identity()
        self.fc = fc
        self.logit_act = nn.ReLU() if logits_before_pool else nn.Identity()
        self.logits_before_pool = logits_before_pool
        self.first_conv = first_conv
        self.stem_steps = tuple(stem_steps)
        self.backbone_frozen = False
        self.cnnbench_meta: ModelMeta | None = None
        # source-library state_dict key -> our key, so published checkpoints load into the wrapper
        self.source_key_map: dict[str, str] = {}
        self.ignored_source_prefixes: tuple[str, ...] = ()

    @property
    def num_features(self) -> int:
        """Width of the embedding ``forward_head(f, pre_logits=True)`` (the input of ``fc``)."""
        if isinstance(self.fc, nn.Linear):
            return self.fc.in_features
        if isinstance(self.fc, nn.Conv2d):
            return self.fc.in_channels
        raise TypeError(f"unsupported classifier layer {type(self.fc).__name__}")

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else self.fc.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, D)``."""
        return self.global_pool(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.logits_before_pool and not pre_logits:
            # SqueezeNet classifies every position with a 1×1 conv, then averages: (B, K, h, w) -> (B, K)
            return self.pool(self.logit_act(self.fc(self.head_drop(x))))
        x = self.pre_logits(self.pool(x))
        if self.logits_before_pool:
            return x  # the pooled map; SqueezeNet's dropout acts on the map, not on the embedding
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def adapt_head_to(self, feature_hw: tuple[int, int]) -> list[str]:
        """Fit the head to a final feature map of ``feature_hw``.

        Global pooling needs nothing. VGG and AlexNet pool adaptively to a fixed 7×7 / 6×6 grid and
        feed it to a wide FC layer; a smaller map (3×3 at 28×28) is only *repeated* to fill that
        grid, which adds weights (VGG-11: 103 M in fc6) and no information. The grid then shrinks to
        the map and fc6 takes that many inputs (freshly initialised). At the native size (a 7×7
        map) nothing changes.
        """
        pool = self.global_pool[0] if isinstance(self.global_pool, nn.Sequential) else self.global_pool
        if not isinstance(pool, nn.AdaptiveAvgPool2d) or not isinstance(self.pre_logits, nn.Sequential):
            return []
        size = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,) * 2
        grid = (int(size[0] or feature_hw[0]), int(size[1] or feature_hw[1]))
        new = (min(grid[0], feature_hw[0]), min(grid[1], feature_hw[1]))
        if new == grid:
            return []
        index, fc6 = next((i, m) for i, m in enumerate(self.pre_logits) if isinstance(m, nn.Linear))
        channels = fc6.in_features // (grid[0] * grid[1])
        self.pre_logits[index] = nn.Linear(channels * new[0] * new[1], fc6.out_features, bias=fc6.bias is not None)
        pool.output_size = new
        return [
            f"global_pool {grid[0]}×{grid[1]}→{new[0]}×{new[1]} and pre_logits.{index} {fc6.in_features}→"
            f"{channels * new[0] * new[1]} inputs (the {feature_hw[0]}×{feature_hw[1]} map was only repeated "
            f"to fill the {grid[0]}×{grid[1]} grid)"
        ]

    def train(self, mode: bool = True) -> ClassifierNet:
        super().train(mode)
        if mode and self.backbone_frozen:
            # A frozen backbone is a fixed feature extractor: BN keeps its running statistics and
            # stochastic depth stays off, as in Keras with trainable=False.
            self.features.eval()
        return self


class TimmNet(ClassifierNet):
    """A timm model under the same contract: the timm model is the backbone, ``fc`` its classifier.

    timm models already expose ``forward_features`` and ``forward_head(pre_logits=True)``; the
    classifier is taken out of the timm model so that the head has the same names for all models.
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features.forward_features(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        # timm's own pooling (and its head dropout, built with p=0): (B, C, h, w) -> (B, C)
        return self.features.forward_head(x, pre_logits=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The registry model inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    for _ in range(4):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model
