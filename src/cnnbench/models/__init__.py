"""The model zoo: a registry of CNN classifiers under one contract, adapted to any input.

Every model from ``create_model`` is a ``ClassifierNet``: ``forward_features``,
``forward_head(x, pre_logits=True)`` for the embedding, ``num_features``, and ``cnnbench_meta``
describing how it was built. See docs/models.md.
"""

from cnnbench.models import lenet, timm_models, torchvision_models  # noqa: F401  (registers the models)
from cnnbench.models._registry import (
    GROUPS,
    ModelSpec,
    canonical_model_name,
    default_input_size,
    get_spec,
    list_models,
    model_groups,
    register_model,
    resolve_model_names,
)
from cnnbench.models.adapt import MIN_FINAL_MAP, feature_map_shape
from cnnbench.models.cpu_conv import PaddedConv2d, cpu_vector_isa, onednn_refuses_small_maps, pad_small_maps
from cnnbench.models.factory import ModelInfo, create_model, model_info
from cnnbench.models.finetune import freeze_backbone, get_classifier, param_groups
from cnnbench.models.net import ClassifierNet, LoadReport, ModelMeta, TimmNet, unwrap_model
from cnnbench.models.pretrained import (
    check_pretrained_available,
    expected_weight_files,
    find_weights,
    load_pretrained,
    read_state_dict,
)
from cnnbench.models.summary import ModelSummary, summarize

__all__ = [
    "GROUPS",
    "MIN_FINAL_MAP",
    "ClassifierNet",
    "LoadReport",
    "ModelInfo",
    "ModelMeta",
    "ModelSpec",
    "ModelSummary",
    "PaddedConv2d",
    "TimmNet",
    "check_pretrained_available",
    "create_model",
    "default_input_size",
    "expected_weight_files",
    "feature_map_shape",
    "find_weights",
    "freeze_backbone",
    "get_classifier",
    "canonical_model_name",
    "get_spec",
    "list_models",
    "load_pretrained",
    "model_groups",
    "model_info",
    "cpu_vector_isa",
    "onednn_refuses_small_maps",
    "pad_small_maps",
    "param_groups",
    "read_state_dict",
    "register_model",
    "resolve_model_names",
    "summarize",
    "unwrap_model",
]
