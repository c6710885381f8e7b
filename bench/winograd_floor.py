"""The floor of each Winograd F(4,3) convolution of a model: the 36 products at the FMA peak against the
transforms' vector instructions and the bytes of V, M and U, per image (batch 1).

    python -m bench.winograd_floor MODEL.onnx [--peak 103.5] [--width 8]

Per convolution taken by the rule (conv_winograd.py): the tiles computed (tile_grid, block_tiles), the
products' FLOPs (2 x 36 x C_in x C_out per tile) and their time at `--peak` GFLOP/s, the transforms' vector
operations at `--width` lanes (input: 144 adds/FMAs, 36 loads and 36 stores per tile and input channel;
output: 100 operations, 36 loads and 16 stores per tile and output channel for the first stage, 16 loads,
2 epilogue operations and 4 stores per tile row of 4 for the second) at 4 per cycle (the clock is the peak
over 32 FLOPs per cycle), and the bytes: V and M written and read back, U read once per block.
"""

from __future__ import annotations

import argparse
from collections import Counter

import onnx
from aic.compiler.lower.conv_winograd import (
    MIN_CHANNELS,
    MIN_MAP,
    MIN_PRODUCT,
    SPAN,
    block_tiles,
    tile_grid,
)
from onnx import numpy_helper, shape_inference

INPUT_OPS, OUTPUT_OPS = 144 + 36 + 36, 100 + 36 + 16  # per tile and channel, before dividing by the lanes
OUTPUT_ROWS_OPS = 4 * (4 + 2 + 1)  # per tile and output channel: 4 rows of 4 lanes loaded, epilogue, stored


def winograd_convs(model: onnx.ModelProto) -> Counter:
    """(C_in, C_out, H_out, W_out) of each 3x3 stride-1 convolution the rule takes, with counts."""
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    weights = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    found: Counter = Counter()
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        cout, cin, *kernel = weights[node.input[1]]
        out = shapes.get(node.output[0])
        if (kernel != [3, 3] or attrs.get("group", 1) != 1 or any(s != 1 for s in attrs.get("strides", [1, 1]))
                or any(d != 1 for d in attrs.get("dilations", [1, 1])) or not out):
            continue
        if min(cin, cout) >= MIN_CHANNELS and cin * cout >= MIN_PRODUCT and min(out[2:]) >= MIN_MAP:
            found[(cin, cout, out[2], out[3])] += 1
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--peak", type=float, default=103.5, help="FMA peak of one core, GFLOP/s")
    p.add_argument("--width", type=int, default=8, help="float32 lanes of a vector")
    args = p.parse_args()
    clock = args.peak / 32  # GHz: two FMAs of 8 lanes per cycle
    print("| conv (C_in x H x W -> C_out) | count | tiles (useful) | blocks | direct GFLOP | product GFLOP "
          "| products at peak ms | input transform ms | output transform ms | V+M MB | U MB read |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (cin, cout, oh, ow), count in sorted(winograd_convs(onnx.load(args.model)).items()):
        tiles = tile_grid(cin, cout, oh, ow)[2]
        block = block_tiles(max(cin, cout), tiles)
        blocks = -(-tiles // block)
        computed = blocks * block
        useful = -(-oh // 4) * -(-ow // 4)
        product = 2 * SPAN * SPAN * cin * cout * computed / 1e9
        direct = 2 * 9 * cin * cout * oh * ow / 1e9
        cycles_in = computed * cin * INPUT_OPS / args.width / 4
        cycles_out = computed * cout * OUTPUT_OPS / args.width / 4 + useful * cout * OUTPUT_ROWS_OPS / 4
        vm = 2 * SPAN * SPAN * (cin + cout) * computed * 4 / 1e6
        u = SPAN * SPAN * cin * cout * 4 * blocks / 1e6
        print(f"| {cin}x{oh}x{ow} -> {cout} | {count} | {computed} ({useful}) | {blocks} | {direct:.3f} | "
              f"{product:.3f} | {product / args.peak * 1e3:.3f} | {cycles_in / clock / 1e6:.3f} | "
              f"{cycles_out / clock / 1e6:.3f} | {vm:.1f} | {u:.1f} |")


if __name__ == "__main__":
    main()
