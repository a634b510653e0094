"""The whole training step captured once in a CUDA graph, then replayed every step.

Small models at 28×28 are launch-bound on a big GPU: a mobilenet_v3_small step is hundreds of
tiny kernels, each costing more to launch than to run. Capturing forward, backward and the
optimiser update in one ``torch.cuda.CUDAGraph`` turns a step into one launch. Requirements, all
met by the engine when ``--cuda-graphs`` is on: static input buffers (refilled each step), a
fixed batch (a smaller last batch runs eagerly), a capturable optimiser (lr and step counters on
the device), no host syncs inside the step, and no GradScaler (bf16 or fp32 only).

Capturing needs a few warm-up steps on a side stream, and they change the weights. The state
before warm-up is snapshotted and copied back *in place* afterwards, so the run is the same run
with or without graphs (the replayed graph reads and writes those very tensors).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnbench.engine.loop import EagerStep

WARMUP_STEPS = 3


def cuda_graphs_wanted(setting: str, device: torch.device, scaler: Any, compile: bool) -> tuple[bool, str | None]:
    """(use graphs, a note saying why not) for ``--cuda-graphs auto|on|off``."""
    if setting == "off":
        return False, None
    reason = None
    if device.type != "cuda":
        reason = "CUDA graphs need a CUDA device; training eagerly"
    elif scaler is not None:
        reason = "CUDA graphs are not used with fp16 loss scaling; use --amp bf16"
    elif compile:
        reason = "CUDA graphs are not combined with --compile here (use torch.compile mode=reduce-overhead)"
    if reason is None:
        return True, None
    return False, reason if setting == "on" else None


def snapshot_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Copies of every tensor a training step changes (weights, buffers, optimiser state)."""
    params = [t.detach().clone() for t in model.state_dict(keep_vars=True).values()]
    opt = [
        {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
        for state in optimizer.state.values()
    ]
    return {"model": params, "optimizer": opt, "optimizer_keys": list(optimizer.state.keys())}


@torch.no_grad()
def restore_state_in_place(model: torch.nn.Module, optimizer: torch.optim.Optimizer, snap: dict[str, Any]) -> None:
    """Copy a snapshot back into the *same* tensors (a captured graph holds their addresses).

    Optimiser state created during warm-up (Adam's moments did not exist before the first step)
    is zeroed in place, which is what a fresh optimiser state holds.
    """
    for live, saved in zip(model.state_dict(keep_vars=True).values(), snap["model"], strict=True):
        live.data.copy_(saved)
    saved_by_param = dict(zip(snap["optimizer_keys"], snap["optimizer"], strict=True))
    for param, state in optimizer.state.items():
        saved = saved_by_param.get(param)
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if saved is not None and key in saved:
                value.copy_(saved[key])
            else:
                value.zero_()


class CudaGraphStep:
    """A training step replayed from a CUDA graph; same interface as EagerStep.

    The first call with a full batch captures the graph (after warm-up); batches of another size
    go through the eager step, which shares the model and the capturable optimiser.
    """

    def __init__(self, eager: EagerStep, batch_size: int) -> None:
        if eager.scaler is not None:
            raise ValueError("CudaGraphStep does not support a GradScaler")
        self.eager = eager
        self.batch_size = batch_size
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_seconds: float | None = None
        self.failed: str | None = None  # why the graph could not be captured (then every step is eager)

    def _step_body(self) -> None:
        e = self.eager
        x = self.static_x
        if e.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=e.autocast_dtype, enabled=e.autocast_dtype is not None):
            logits = e.model(x)
            loss = F.cross_entropy(logits.float(), self.static_y, label_smoothing=e.label_smoothing)
        loss.backward()
        if e.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(e.model.parameters(), e.grad_clip, foreach=True)
        e.optimizer.step()
        if e.ema is not None:
            from cnnbench.engine.loop import _unwrap

            e.ema.update(_unwrap(e.model))
        self.static_loss = loss.detach() * self.batch_size
        self.static_correct = (logits.argmax(dim=1) == self.static_y).sum()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        import time

        t0 = time.perf_counter()
        e = self.eager
        self.static_x = x.clone()
        self.static_y = y.clone()
        # Anything the optimiser creates lazily must exist before capture: one eager step on a side
        # stream builds it (and the autotuned kernels), then the state is put back.
        snap = snapshot_state(e.model, e.optimizer)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                e.optimizer.zero_grad(set_to_none=True)
                self._step_body()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        restore_state_in_place(e.model, e.optimizer, snap)
        # Grads set to None: backward inside the capture allocates them from the graph's pool and
        # each replay overwrites (not accumulates) them.
        e.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._step_body()
        except Exception as exc:
            torch.cuda.synchronize()
            restore_state_in_place(e.model, e.optimizer, snap)
            self.failed = f"CUDA graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); eager"
            return
        self.graph = graph
        torch.cuda.synchronize()
        self.capture_seconds = time.perf_counter() - t0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[0] != self.batch_size or self.failed:
            return self.eager(x, y)
        if self.graph is None:
            self._capture(x, y)
            if self.failed:
                return self.eager(x, y)
        self.static_x.copy_(x, non_blocking=True)
        self.static_y.copy_(y, non_blocking=True)
        self.graph.replay()
        return self.static_loss.clone(), self.static_correct.clone()
