"""The model registry: ``@register_model`` builders, named groups, name resolution.

As in timm's ``_registry.py``, the key is the builder's function name and a duplicate raises. A
builder takes ``num_classes`` and ``in_chans`` and returns a ``ClassifierNet`` at the
architecture's native layout; ``create_model`` does the rest (head, dropout, weights, small
inputs) the same way for every model.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from cnnbench.errors import ModelError

Builder = Callable[..., "object"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture and its defaults."""

    name: str
    builder: Builder
    source: str  # "torchvision" | "timm" | "cnnbench"
    source_name: str  # the name in its library (torchvision's, or timm's architecture name)
    input_size: int  # native square input (H = W)
    in_chans: int = 3
    num_classes: int = 1000
    # Published weights: a torchvision model name (its DEFAULT weights), a timm "arch.tag", or None.
    weights: str | None = None
    doc: str = field(default="", compare=False)


_REGISTRY: dict[str, ModelSpec] = {}

# Named groups, declared once; order is the order studies list models in (classic, then lightweight).
GROUPS: dict[str, tuple[str, ...]] = {
    "seed-mnist": (
        "lenet5",
        "alexnet",
        "vgg11",
        "googlenet",
        "resnet18",
        "squeezenet1_1",
        "shufflenet_v2_x1_0",
        "mobilenet_v3_small",
        "mnasnet1_0",
        "efficientnet_b0",
    ),
    "seed-caltech": ("vgg19", "inception_resnet_v2", "mobilenet_v2", "efficientnet_b4"),
    "classic": (
        "lenet5",
        "alexnet",
        "vgg11",
        "vgg16",
        "vgg19",
        "googlenet",
        "inception_v3",
        "inception_resnet_v2",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnext50_32x4d",
        "wide_resnet50_2",
        "densenet121",
    ),
    "lightweight": (
        "squeezenet1_1",
        "shufflenet_v2_x1_0",
        "mobilenet_v1",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "mnasnet1_0",
        "efficientnet_b0",
    ),
}


def register_model(
    fn: Builder | None = None,
    *,
    source: str = "cnnbench",
    source_name: str | None = None,
    input_size: int = 224,
    in_chans: int = 3,
    num_classes: int = 1000,
    weights: str | None = None,
) -> Callable[[Builder], Builder] | Builder:
    """Register a builder under its function name: ``@register_model`` or ``@register_model(source=...)``.

    Raises:
        ModelError: when the name is already registered.
    """

    def wrap(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})")
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            source=source,
            source_name=source_name or name,
            input_size=input_size,
            in_chans=in_chans,
            num_classes=num_classes,
            weights=weights,
            doc=(builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else "",
        )
        return builder

    return wrap(fn) if fn is not None else wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch ``pattern`` (``"mobilenet*"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_groups() -> dict[str, list[str]]:
    """Named groups of models (``seed-mnist``, ``seed-caltech``, ``classic``, ``lightweight``)."""
    return {g: list(names) for g, names in GROUPS.items()}


# The MNIST study's own model names (its main.py --model values), accepted wherever a model is named.
ALIASES = {
    "lenet": "lenet5",
    "vgg": "vgg11",
    "resnet": "resnet18",
    "squeezenet": "squeezenet1_1",
    "shufflenet": "shufflenet_v2_x1_0",
    "shufflenetv2": "shufflenet_v2_x1_0",
    "mobilenetv3": "mobilenet_v3_small",
    "mnasnet": "mnasnet1_0",
    "efficientnet": "efficientnet_b0",
}


def canonical_model_name(name: str) -> str:
    """The zoo name of ``name``: itself, or what a seed-study alias (``shufflenetv2``) stands for."""
    return ALIASES.get(name, name) if name not in _REGISTRY else name


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model (or an alias); an unknown name raises with the closest names."""
    spec = _REGISTRY.get(canonical_model_name(name))
    if spec is None and name in GROUPS:  # `lr-find --model seed-mnist` once suggested the name it refused
        raise ModelError(
            f"{name!r} is a group of {len(GROUPS[name])} models ({', '.join(GROUPS[name][:3])}, ...); "
            "this command takes one model (a study's --models takes groups)"
        )
    if spec is None:
        raise ModelError(f"unknown model {name!r}{_suggest(name)}; run 'cnnbench models' to list all")
    return spec


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, [*_REGISTRY, *GROUPS], n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def resolve_model_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Expand a comma list of names, groups, fnmatch patterns and ``all`` into model names.

    ``"seed-mnist,resnet50"`` -> the ten seed-mnist models then resnet50; duplicates are dropped,
    the first occurrence keeps its place.

    Raises:
        ModelError: naming an unknown entry (with close matches) or a pattern that matches nothing.
    """
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    out: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item == "all":
            names = list_models()
        elif item in GROUPS:
            names = list(GROUPS[item])
        elif any(ch in item for ch in "*?["):
            names = list_models(item)
            if not names:
                raise ModelError(f"model pattern {item!r} matches no registered model{_suggest(item.strip('*?'))}")
        else:
            names = [get_spec(item).name]
        out.extend(n for n in names if n not in out)
    if not out:
        raise ModelError(f"no model named in {spec!r}; expected names, groups ({', '.join(GROUPS)}) or patterns")
    return out


def default_input_size(name: str) -> int:
    """The architecture's native input resolution (224, 299 for Inception, 380 for EfficientNet-B4, 28 for LeNet-5)."""
    return get_spec(name).input_size


def groups_of(name: str) -> list[str]:
    return [g for g, names in GROUPS.items() if name in names]
