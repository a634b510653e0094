"""``torch.compile`` on the CPU: step speed-up and compile time per seed-mnist model (issue [4/5] item 3).

Each model is measured in its own process with an empty Inductor cache (a user's first compile):
the engine's model (``create_model``, channels-last, as ``cnnbench train`` builds it) trains on
random 1×28×28 batches of 64 (the MNIST study's batch) with AdamW. Eager and compiled alternate in
that process: ``--steps`` timed steps each after 3 untimed ones, median per step; the compile time
is the wall time of the first compiled step (Dynamo tracing, Inductor code generation, the C++
compiler) minus one compiled step. The table gives the speed-up, the compile time and the number of
steps after which compiling has paid for itself; an MNIST-study epoch (48,000 images) is 750 steps.

    python benchmarks/compile_cpu.py                     # the 10 seed-mnist models
    python benchmarks/compile_cpu.py --models lenet5,resnet18 --steps 30
    python benchmarks/compile_cpu.py --models lenet5 --steps 2 --backend eager   # a smoke test: Dynamo only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

SEED_MNIST = (
    "lenet5,alexnet,vgg11,googlenet,resnet18,squeezenet1_1,shufflenet_v2_x1_0,mobilenet_v3_small,"
    "mnasnet1_0,efficientnet_b0"
)
EPOCH_STEPS = 48_000 // 64


def measure(model_name: str, steps: int, batch: int, backend: str = "inductor") -> dict:
    """In this process: eager and compiled step times, and the first compiled step's wall time."""
    from cnnbench.utils.threads import configure_cpu_threads

    configure_cpu_threads(None)
    import torch

    from cnnbench.models import create_model

    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def make():
        torch.manual_seed(0)
        model = create_model(model_name, num_classes=10, in_chans=1, input_size=28)
        model = model.to(memory_format=torch.channels_last).train()
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(model, opt) -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(model, opt, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            step(model, opt)
            out.append(time.perf_counter() - t0)
        return out

    eager_model, eager_opt = make()
    compiled_model, compiled_opt = make()
    compiled = torch.compile(compiled_model, backend=backend)
    t0 = time.perf_counter()
    step(compiled, compiled_opt)  # traced and compiled here
    first = time.perf_counter() - t0
    for _ in range(3):
        step(eager_model, eager_opt)
        step(compiled, compiled_opt)
    eager, comp = [], []
    for _ in range(2):  # alternate halves so that drift hits both
        eager += timed(eager_model, eager_opt, steps // 2)
        comp += timed(compiled, compiled_opt, steps // 2)
    eager.sort()
    comp.sort()
    e, c = eager[len(eager) // 2], comp[len(comp) // 2]
    return {"model": model_name, "eager_s": e, "compiled_s": c, "compile_s": max(first - c, 0.0)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=SEED_MNIST)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: Dynamo only, to test)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="the rows as JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this model here, print JSON
    return parser.parse_args(argv)


def measure_each(args: argparse.Namespace) -> list[dict]:
    """Each model in its own process with an empty Inductor cache; a failure is a row with its error."""
    rows = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": cache}
            cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--batch", str(args.batch)]
            proc = subprocess.run([*cmd, "--backend", args.backend], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  {name}: failed — {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr, flush=True)
            rows.append({"model": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        saved = row["eager_s"] - row["compiled_s"]
        row["speedup"] = row["eager_s"] / row["compiled_s"]
        row["repay_steps"] = row["compile_s"] / saved if saved > 0 else None
        row["repay_epochs"] = row["repay_steps"] / EPOCH_STEPS if row["repay_steps"] is not None else None
        rows.append(row)
        print(
            f"  {name:20s} eager {row['eager_s'] * 1e3:7.1f} ms  compiled {row['compiled_s'] * 1e3:7.1f} ms  "
            f"compile {row['compile_s']:6.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.batch, args.backend)))
        return 0

    import torch

    load_before = os.getloadavg()
    rows = measure_each(args)
    result = {
        "benchmark": "compile_cpu",
        "device": f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU used",
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "backend": args.backend,
        "batch": args.batch,
        "steps": args.steps,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    if args.json:
        from benchio import emit_json

        emit_json(result, args.json)
    if args.json != "-":
        print_table(result)
    return 0


def print_table(result: dict) -> None:
    print()
    print(f"device: {result['device']}")
    print(f"versions: python {result['versions']['python']}, torch {result['versions']['torch']}")
    print(f"load average (1/5/15 min): before {result['load_before']}, after {result['load_after']}")
    print(
        f"batch {result['batch']} of 1×28×28, AdamW, channels-last; median of {result['steps']} steps; "
        f"cold Inductor cache; backend {result['backend']}"
    )
    print()
    print("| model | eager ms/step | compiled ms/step | speed-up | compile s | steps to repay | epochs to repay |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        if "error" in r:
            print(f"| {r['model']} | — | failed: {r['error'][:80]} | | | | |")
            continue
        repay_steps = f"{r['repay_steps']:,.0f}" if r["repay_steps"] is not None else "never"
        repay_epochs = f"{r['repay_epochs']:.1f}" if r["repay_epochs"] is not None else "never"
        print(
            f"| {r['model']} | {r['eager_s'] * 1e3:.1f} | {r['compiled_s'] * 1e3:.1f} | "
            f"{r['speedup']:.2f}× | {r['compile_s']:.1f} | {repay_steps} | {repay_epochs} |"
        )


if __name__ == "__main__":
    sys.exit(main())
