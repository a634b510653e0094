import torch
from torch import nn

from cnnbench.engine.precise_bn import update_bn_stats


def _model() -> nn.Module:
    torch.manual_seed(0)
    # MobileNetV3's BN momentum: after a short run the running stats still hold their initial values
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.ReLU(), nn.Dropout(0.5))


def test_running_stats_become_the_average_over_the_batches():
    model = _model().train()
    batches = [(torch.randn(16, 1, 8, 8) * 3 + 5, torch.zeros(16)) for _ in range(4)]
    for x, _ in batches[:2]:
        model(x)  # a couple of training steps: running_mean moves 1 % of the way
    bn = model[1]
    stale = bn.running_mean.clone()
    conv_out = torch.cat([model[0](x) for x, _ in batches])
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    rng = torch.get_rng_state()
    assert update_bn_stats(model, batches) == 4
    expected = conv_out.mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-4)  # equal batches: the mean of batch means
    assert not torch.allclose(stale, expected, atol=0.5)
    assert bn.momentum == 0.01 and model.training  # restored
    assert torch.equal(torch.get_rng_state(), rng)  # dropout stayed off: no random numbers drawn
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v)


def test_a_model_without_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Linear(3, 3))
    assert update_bn_stats(model, [(torch.randn(2, 3), None)]) == 0
