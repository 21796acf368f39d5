"""Builds tests/data/models/tiny_rgb.onnx: a fixed-size 32x32 NCHW model
(and tiny_rgb_224.onnx, the same at 224x224, for the models benchmark)
whose three logits are the mean of each normalised channel, so its
answer ('red', 'green' or 'blue') is the image's dominant channel.
Fast to run, so tests of the model machinery need no large model.

    python3 -m pip install onnx && python3 scripts/make_tiny_model.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "tests", "data", "models")



def build(file_name, side):
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, side, side])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    weight = numpy_helper.from_array(np.eye(3, dtype=np.float32), "weight")
    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["means", "weight"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tiny_rgb", [pixels], [logits], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, file_name))


build("tiny_rgb.onnx", 32)  # tests
build("tiny_rgb_224.onnx", 224)  # the models benchmark: inference nearly free
with open(os.path.join(out_dir, "tiny_rgb_labels.txt"), "w") as f:
    f.write("red\ngreen\nblue\n")


# A coefficient-input model: input [N, 3 * 4 bands, 4, 4] blocks (32x32
# pixels), output the mean of each channel over the blocks; channel 0 is
# the luma DC, 4 the Cb DC, 8 the Cr DC.
coefs = helper.make_tensor_value_info("coefficients", TensorProto.FLOAT, ["N", 12, 4, 4])
means = helper.make_tensor_value_info("means", TensorProto.FLOAT, ["N", 12])
graph = helper.make_graph(
    [helper.make_node("ReduceMean", ["coefficients"], ["means"], axes=[2, 3], keepdims=0)],
    "tiny_dct",
    [coefs],
    [means],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(out_dir, "tiny_dct.onnx"))

# The coefficient-domain twin of tiny_rgb.onnx: input [N, 3 planes x 1
# band, 4, 4] (the DC of Y, Cb and Cr per block, dequantized: 8 x the
# block's mean, level-shifted by 128), output tiny_rgb's three logits (the
# mean of R, G and B in [0, 1]) through the YCbCr -> RGB matrix. The two
# form a model family whose coefficient member reads 3 of 192 bands.
dc = helper.make_tensor_value_info("coefficients", TensorProto.FLOAT, ["N", 3, 4, 4])
rgb = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
to_rgb = np.array(
    [[1.0, 1.0, 1.0], [0.0, -0.344136, 1.772], [1.402, -0.714136, 0.0]], dtype=np.float32
) / (8.0 * 255.0)
shift = np.full(3, 128.0 / 255.0, dtype=np.float32)
graph = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["coefficients"], ["dc"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["dc", "to_rgb"], ["centred"]),
        helper.make_node("Add", ["centred", "shift"], ["logits"]),
    ],
    "tiny_dct_rgb",
    [dc],
    [rgb],
    [numpy_helper.from_array(to_rgb, "to_rgb"), numpy_helper.from_array(shift, "shift")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(out_dir, "tiny_dct_rgb.onnx"))
