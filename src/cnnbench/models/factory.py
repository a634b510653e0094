"""``create_model``: one pipeline for every registered architecture.

build (library init, ``num_classes``, ``in_chans``) → head (linear/mlp, dropout) → pretrained
weights → small-input adaptation → ``cnnbench_meta``. The module structure depends only on
``name, num_classes, in_chans, input_size, drop_rate, head`` (the run's ``model_args``), never on
``pretrained``, so a checkpoint always loads into a model rebuilt without weights.
"""

from __future__ import annotations

import functools
import operator
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnbench.errors import ConfigError
from cnnbench.models._registry import get_spec, groups_of
from cnnbench.models.adapt import adapt_to_input, set_head_dropout, use_mlp_head
from cnnbench.models.net import ClassifierNet, ModelMeta
from cnnbench.models.pretrained import find_weights, load_pretrained, weight_files

HEADS = ("linear", "mlp")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # int, numpy integers
    except TypeError:
        return None


def _as_hw(value: Any, default: int) -> tuple[int, int]:
    if value is None:
        return default, default
    side = _as_int(value)
    sides = [_as_int(v) for v in value] if isinstance(value, (tuple, list)) else []
    if side is not None:
        hw = (side, side)
    elif len(sides) in (2, 3) and all(v is not None for v in sides):
        hw = (int(sides[-2]), int(sides[-1]))  # (H, W) or (C, H, W)
    else:
        raise ConfigError(f"input_size {value!r}: expected an integer or (height, width)")
    if min(hw) < 8:
        raise ConfigError(f"input_size {value!r}: expected at least 8 pixels a side (28 or more for ImageNet models)")
    return hw


def _check_args(num_classes: int, in_chans: int, drop_rate: float | None, head: str) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes {num_classes!r}: expected an integer ≥ 1")
    if not isinstance(in_chans, int) or isinstance(in_chans, bool) or in_chans < 1:
        raise ConfigError(f"in_chans {in_chans!r}: expected an integer ≥ 1 (1 for grey images, 3 for RGB)")
    if drop_rate is not None and not (isinstance(drop_rate, (int, float)) and 0.0 <= drop_rate < 1.0):
        raise ConfigError(f"drop_rate {drop_rate!r}: expected a number in [0, 1)")
    if head not in HEADS:
        raise ConfigError(f"head {head!r}: expected one of {', '.join(HEADS)}")


def _remove_logit_relu(model: ClassifierNet) -> list[str]:
    """Replace a ReLU on the logits by the identity; the notes to record (none when there was none)."""
    if not isinstance(model.logit_act, nn.ReLU):
        return []
    # SqueezeNet's ReLU on its logits: once every logit of a sample is ≤ 0 it gets no gradient,
    # and training from scratch can stall at chance (mnist-sample, 3 epochs: 15 % with it, 65 %
    # without). Removed whatever the weights, so that a model depends on its model_args alone;
    # published weights predict the same class whenever one logit is positive.
    model.logit_act = nn.Identity()
    return ["ReLU on the logits removed (with it, training from scratch can stall at chance)"]


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    input_size: int | tuple[int, int] | None = None,
    pretrained: bool | str | os.PathLike[str] | None = None,
    drop_rate: float | None = None,
    head: str = "linear",
) -> ClassifierNet:
    """Build a registered model for a dataset.

    Args:
        name: a registered name (``cnnbench models`` lists them).
        num_classes: outputs of the classifier.
        in_chans: input channels (1 for MNIST); the first conv is adapted.
        input_size: the training input, an int or (H, W); None means the architecture's native size.
            Below the native size the stem is adapted so the last feature map stays ≥ 2×2.
        pretrained: None/False/"none" for random init; True (or "cache") for the published weights from
            the torch hub / Hugging Face cache, downloaded there as torchvision / timm would when missing
            (not with CNNBENCH_OFFLINE=1); a weights file or a directory of weights files (never downloads).
        drop_rate: classifier dropout (None keeps the architecture's default; added before ``fc``
            where the architecture has none).
        head: "linear" (the architecture's own) or "mlp" (FC 1000 → ReLU → Dropout 0.5 → FC classes).

    Raises:
        ModelError: unknown name, input too small, weights that do not fit.
        WeightsNotFoundError: the weights file is not where it should be (and may not be downloaded).
        WeightsDownloadError: downloading the published weights failed; nothing was saved.
        ConfigError: an argument out of range.
    """
    spec = get_spec(name)
    _check_args(num_classes, in_chans, drop_rate, head)
    hw = _as_hw(input_size, spec.input_size)
    weights = find_weights(name, pretrained)  # fail (or download) before spending time on building
    return _build(spec, name, num_classes, in_chans, hw, weights, drop_rate, head)


def _build(spec, name: str, num_classes: int, in_chans: int, hw, weights, drop_rate, head: str) -> ClassifierNet:
    """The model of ``spec`` with its head, its weights and its small-input adaptation; ``cnnbench_meta`` says so."""
    model: ClassifierNet = spec.builder(num_classes=num_classes, in_chans=in_chans)
    head_init = getattr(model, "head_init", None)
    head_notes = [head_init(model)] if head_init is not None and num_classes != spec.num_classes else []
    if head == "mlp":
        use_mlp_head(model, num_classes, drop_rate)
    elif drop_rate is not None:
        set_head_dropout(model, float(drop_rate))
    report = load_pretrained(model, weights, name) if weights is not None else None
    notes = head_notes + _remove_logit_relu(model)
    adaptation, final_map = adapt_to_input(model, in_chans, hw, name)
    init = getattr(model, "small_input_init", None)
    if adaptation and weights is None and init is not None:
        # an architecture whose small-input variant also trains from another initialisation: at its native
        # size, or from pretrained weights, it is left exactly as published
        adaptation.append(init(model))
    model.cnnbench_meta = ModelMeta(
        name=name,
        source=spec.source,
        input_size=hw,
        in_chans=in_chans,
        num_classes=num_classes,
        head=head,
        drop_rate=drop_rate,
        adaptation=adaptation,
        notes=notes,
        final_feature_map=final_map,
        pretrained=str(weights) if weights is not None else None,
        load_report=report,
    )
    return model


@dataclass
class ModelInfo:
    """A registered model as ``cnnbench models`` lists it."""

    name: str
    source: str
    source_name: str
    params: int  # at the default input and number of classes
    default_input: list[int]  # [C, H, W]
    num_classes: int
    groups: list[str] = field(default_factory=list)
    weights_file: str | None = None  # canonical file name in a pretrained directory
    weights_url: str | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _default_params(name: str) -> int:
    spec = get_spec(name)
    with torch.device("meta"):  # shapes only: counting VGG-19 costs no memory and no init time
        model = spec.builder(num_classes=spec.num_classes, in_chans=spec.in_chans)
    return sum(p.numel() for p in model.parameters())


def model_info(name: str) -> ModelInfo:
    """Source, parameter count at the defaults, default input, groups and weights file of a model."""
    spec = get_spec(name)
    files = weight_files(spec)
    return ModelInfo(
        name=spec.name,
        source=spec.source,
        source_name=spec.source_name,
        params=_default_params(name),
        default_input=[spec.in_chans, spec.input_size, spec.input_size],
        num_classes=spec.num_classes,
        groups=groups_of(name),
        weights_file=files.names[0] if spec.weights else None,
        weights_url=files.url,
        description=spec.doc,
    )
