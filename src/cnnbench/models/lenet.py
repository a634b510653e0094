"""LeNet-5 as the MNIST study built it (its Figure 37): ReLU and max-pooling, dropout in the classifier."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnbench.models._registry import register_model
from cnnbench.models.net import ClassifierNet


class LeNet5(ClassifierNet):
    """conv(6, 5×5) ReLU maxpool, conv(16, 5×5) ReLU maxpool, dropout, FC 256→120 ReLU dropout,
    FC 120→84 ReLU, FC 84→classes: 44,426 parameters at 1×28×28 with 10 classes.

    The classifier expects a 16×4×4 map (28×28 input). At other input sizes the last map is
    average-pooled to 4×4 first, so the parameter count does not depend on the input size.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.5) -> None:
        features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, 6, kernel_size=5),  # (B, 6, 24, 24) at 28×28
                relu1=nn.ReLU(inplace=True),
                pool1=nn.MaxPool2d(2),  # (B, 6, 12, 12)
                conv2=nn.Conv2d(6, 16, kernel_size=5),  # (B, 16, 8, 8)
                relu2=nn.ReLU(inplace=True),
                pool2=nn.MaxPool2d(2),  # (B, 16, 4, 4)
            )
        )
        pre_logits = nn.Sequential(
            OrderedDict(
                drop1=nn.Dropout(drop_rate),
                fc1=nn.Linear(16 * 4 * 4, 120),
                relu3=nn.ReLU(inplace=True),
                drop2=nn.Dropout(drop_rate),
                fc2=nn.Linear(120, 84),
                relu4=nn.ReLU(inplace=True),
            )
        )
        super().__init__(
            features, nn.Flatten(1), nn.Linear(84, num_classes), pre_logits=pre_logits, first_conv="features.conv1"
        )

    def adapt_head_to(self, feature_hw: tuple[int, int]) -> list[str]:
        if tuple(feature_hw) == (4, 4):
            return []
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(1))
        h, w = feature_hw
        return [f"last feature map {h}×{w} average-pooled to 4×4 before fc1 (LeNet-5's classifier takes 16×4×4)"]


@register_model(input_size=28, in_chans=1, num_classes=10)
def lenet5(**kw) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998) with ReLU, max-pooling and dropout, as in the MNIST study."""
    return LeNet5(**kw)
