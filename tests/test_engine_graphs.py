"""The CUDA-graph fast path: its guards and its state handling, checked on the CPU."""

import pytest
import torch

from cnnbench.engine import TrainConfig, fit
from cnnbench.engine.graphs import cuda_graphs_wanted, restore_state_in_place, snapshot_state


def test_graphs_are_only_used_where_they_can_run():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert cuda_graphs_wanted("auto", cpu, None, False) == (False, None)  # silently eager
    used, why = cuda_graphs_wanted("on", cpu, None, False)
    assert not used and "need a CUDA device" in why
    used, why = cuda_graphs_wanted("on", gpu, scaler=object(), compile=False)
    assert not used and "--amp bf16" in why
    assert cuda_graphs_wanted("on", gpu, None, True)[0] is False
    assert cuda_graphs_wanted("on", gpu, None, False) == (True, None)
    assert cuda_graphs_wanted("off", gpu, None, False) == (False, None)


@pytest.mark.slow
def test_asking_for_graphs_on_the_cpu_trains_eagerly_and_says_so(tmp_path, isolated_cache):
    cfg = TrainConfig(
        model="lenet5",
        data="synthetic",
        epochs=1,
        max_train_samples=128,
        cuda_graphs="on",
        device="cpu",
        progress=False,
    )
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert any("CUDA graphs need a CUDA device; training eagerly" in n for n in summary["notes"])


def test_warm_up_steps_are_undone_in_place():
    """Capture needs warm-up steps; the state is then restored into the very same tensors."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # optimiser state exists for every parameter now
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt.state.values()]
    assert len(moments) == len(list(model.parameters())) == 6  # the loop below checks every one
    ptrs = [t.data_ptr() for t in model.state_dict().values()]
    snap = snapshot_state(model, opt)
    for _ in range(3):
        step()  # the warm-up steps change weights, BN statistics and moments
    assert not torch.equal(model.state_dict()["0.weight"], before["0.weight"])
    restore_state_in_place(model, opt, snap)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [t.data_ptr() for t in model.state_dict().values()] == ptrs  # same storage: a graph stays valid
    for saved, state in zip(moments, opt.state.values(), strict=True):
        assert torch.equal(state["exp_avg"], saved)


def test_optimizer_state_created_during_warm_up_is_zeroed():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    snap = snapshot_state(model, opt)  # no state yet
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    restore_state_in_place(model, opt, snap)
    assert len(opt.state) == 2  # weight and bias keep their (zeroed) state: a captured graph points at it
    for state in opt.state.values():
        assert float(state["exp_avg"].abs().sum()) == 0 and float(state["exp_avg_sq"].abs().sum()) == 0


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the lent GPU runs it)")
def test_graph_step_matches_eager_on_a_gpu(tmp_path, isolated_cache):
    common = dict(
        model="lenet5",
        data="synthetic",
        epochs=2,
        batch_size=64,
        amp="none",
        deterministic=False,
        progress=False,
        device="cuda",
    )
    eager = fit(TrainConfig(**common, cuda_graphs="off"), tmp_path / "eager", quiet=True)
    graph = fit(TrainConfig(**common, cuda_graphs="on"), tmp_path / "graph", quiet=True)
    assert any(n.startswith("CUDA graph: training step captured") for n in graph["notes"])
    assert abs(eager["test_accuracy"] - graph["test_accuracy"]) < 0.05
