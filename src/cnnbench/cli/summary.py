"""``cnnbench summary MODEL --input CxHxW``: layer table, params, size, FLOPs, final feature map, adaptation."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import parse_input_shape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnbench.cli.common import add_json_flag

    parser.add_argument("model", help="model name (see 'cnnbench models')")
    parser.add_argument("--input", help="input shape CxHxW, e.g. 1x28x28 (default: the model's native input)")
    parser.add_argument("--num-classes", type=int, help="classifier outputs (default: 1000; 10 for lenet5)")
    parser.add_argument("--head", choices=("linear", "mlp"), default="linear", help="classifier head")
    parser.add_argument("--depth", type=int, default=3, help="levels of nested modules in the layer table")
    parser.add_argument("--no-layers", action="store_true", help="totals only, no layer table")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from cnnbench.cli.common import console, emit_json, print_table
    from cnnbench.errors import ConfigError
    from cnnbench.models import create_model, get_spec, summarize

    spec = get_spec(args.model)
    # an empty --input "" is a mistake to name, not a request for the default
    shape = (
        parse_input_shape(args.input) if args.input is not None else (spec.in_chans, spec.input_size, spec.input_size)
    )
    if args.depth < 1:
        raise ConfigError(f"--depth {args.depth}: expected an integer ≥ 1")
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes {args.num_classes}: expected an integer ≥ 1")
    num_classes = args.num_classes if args.num_classes is not None else spec.num_classes
    model = create_model(args.model, num_classes=num_classes, in_chans=shape[0], input_size=shape[1:], head=args.head)
    summary = summarize(model, shape, layers=not args.no_layers, depth=args.depth)
    if args.json:
        emit_json(summary.to_dict())
        return 0
    if summary.layers:
        rows = [
            [
                "  " * (r["depth"] - 1) + r["name"].rsplit(".", 1)[-1],
                r["type"],
                "x".join(map(str, r["output_shape"] or [])),
                f"{r['params']:,}" if r["params"] else "",
            ]
            for r in summary.layers
        ]
        print_table(f"{args.model} at {'x'.join(map(str, shape))}", ["layer", "type", "output", "params"], rows)
    out = console()
    out.print(f"params            {summary.params:,} ({summary.trainable_params:,} trainable)")
    out.print(f"size              {summary.size_mb:.2f} MB (fp32 state_dict, MiB)")
    out.print(f"FLOPs             {summary.flops / 1e9:.3f} G (2 x MACs, forward, one image)")
    out.print(f"final feature map {'x'.join(map(str, summary.final_feature_map))}")
    out.print(f"embedding         {summary.num_features} features (forward_head(pre_logits=True))")
    out.print(f"adaptation        {'; '.join(summary.adaptation) if summary.adaptation else 'none (native layout)'}")
    for line in summary.notes:
        out.print(f"note              {line}")
    return 0
