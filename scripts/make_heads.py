"""Splits the bundled MobileNetV2 (tests/data/models/mobilenet_v2_imagenet.onnx)
into a backbone and heads that run on its features, for models declared
`ON FEATURES OF` another model:

- mobilenet_v2_backbone.onnx: the full model up to global average pooling
  and flatten. Same input as the full model (`input` [N, 3, H, W]), output
  `features` [N, 1280].
- mobilenet_v2_head.onnx: `features` -> the full model's own classifier
  (its Gemm, same weights) -> `logits` [N, 1000], so head(backbone(x)) is
  full(x).
- mobilenet_v2_embed.onnx: `features` -> L2-normalised `embedding`
  [N, 1280], for cosine similarity search (a zero vector stays zero).
- mobilenet_v2_coarse.onnx + coarse_classes.txt: `features` -> classifier
  -> softmax -> the summed probability of each coarse group of ImageNet
  classes (COARSE_GROUPS below) -> `probabilities` [N, G]; the argmax is
  the coarse label. It is the group with the most probability mass, which
  need not hold the top-1 class: on the flower photo in
  tests/data/photos/jpeg-variants the top-1 is daisy (0.41) but five
  butterflies and a bee add up to 0.53, so the coarse label is
  "invertebrate".

Then checks them with onnxruntime on every photo under tests/data/photos
and exits non-zero if a check fails.

    python3 -m pip install onnx onnxruntime==1.31.1 numpy pillow && python3 scripts/make_heads.py
"""
import copy
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
data_dir = os.path.join(here, "..", "tests", "data")
model_dir = os.path.join(data_dir, "models")
full_path = os.path.join(model_dir, "mobilenet_v2_imagenet.onnx")

FEATURES = 1280
CLASSES = 1000
# Opset 13 / IR 8 as the other generated models (onnxruntime 1.31 loads
# them; ReduceL2 still takes `axes` as an attribute at this opset).
OPSET = 13
IR_VERSION = 8
# Guards the division for an all-zero feature vector (as torch's F.normalize).
EPSILON = 1e-12

# Coarse groups as inclusive ranges of ImageNet-1k class indices. The
# indices follow WordNet order, so most groups are a few contiguous runs;
# vehicles are spread through the alphabetical artifact block (398-922)
# and are listed one by one: what carries people or goods (417 balloon in
# WordNet's hot-air-craft sense), while hand carts, missiles and vehicle
# parts are objects. "object" is everything else in that block plus the three
# people classes (981 ballplayer, 982 groom, 983 scuba diver) and 999
# toilet tissue. Each class is in exactly one group (checked below).
VEHICLES = {
    403: "aircraft carrier", 404: "airliner", 405: "airship", 407: "ambulance",
    408: "amphibian", 417: "balloon", 436: "beach wagon",
    444: "bicycle-built-for-two", 450: "bobsled", 466: "bullet train",
    468: "cab", 472: "canoe", 484: "catamaran", 510: "container ship",
    511: "convertible", 537: "dogsled", 547: "electric locomotive",
    554: "fireboat", 555: "fire engine", 561: "forklift", 565: "freight car",
    569: "garbage truck", 573: "go-kart", 575: "golfcart", 576: "gondola",
    586: "half track", 603: "horse cart", 609: "jeep", 612: "jinrikisha",
    625: "lifeboat", 627: "limousine", 628: "liner", 654: "minibus",
    656: "minivan", 661: "Model T", 665: "moped", 670: "motor scooter",
    671: "mountain bike", 675: "moving van", 690: "oxcart",
    705: "passenger car", 717: "pickup", 724: "pirate", 734: "police van",
    751: "racer", 757: "recreational vehicle", 779: "school bus",
    780: "schooner", 802: "snowmobile", 803: "snowplow", 812: "space shuttle",
    814: "speedboat", 817: "sports car", 820: "steam locomotive",
    829: "streetcar", 833: "submarine", 847: "tank", 864: "tow truck",
    866: "tractor", 867: "trailer truck", 870: "tricycle", 871: "trimaran",
    874: "trolleybus", 880: "unicycle", 895: "warplane", 913: "wreck",
    914: "yawl",
}
COARSE_GROUPS = [
    # 151 Chihuahua .. 268 Mexican hairless
    ("dog", [(151, 268)]),
    # 281 tabby .. 285 Egyptian cat (domestic cats; big cats are mammals)
    ("cat", [(281, 285)]),
    # 101-106 tusker, monotremes, marsupials; 147-150 whales, dugong, sea
    # lion; 269-280 wolves, foxes, hyena; 286-299 big cats, bears,
    # mongoose, meerkat; 330-388 rabbits, rodents, hoofed animals,
    # weasels, primates, elephants, pandas
    ("other mammal", [(101, 106), (147, 150), (269, 280), (286, 299), (330, 388)]),
    # 7-24 cock .. great grey owl; 80-100 grouse .. black swan;
    # 127-146 white stork .. albatross
    ("bird", [(7, 24), (80, 100), (127, 146)]),
    # 0-6 tench .. stingray; 25-68 salamanders, frogs, turtles, lizards,
    # crocodiles, triceratops, snakes; 389-397 barracouta .. puffer
    ("fish/reptile/amphibian", [(0, 6), (25, 68), (389, 397)]),
    # 69-79 trilobite, spiders, tick, centipede; 107-126 jellyfish, coral,
    # worms, molluscs, crabs, lobsters; 300-329 beetles, insects,
    # butterflies, starfish, sea urchin, sea cucumber
    ("invertebrate", [(69, 79), (107, 126), (300, 329)]),
    # cars, trucks, buses, trains, boats, aircraft, bikes, sleds, animal carts
    ("vehicle", [(i, i) for i in sorted(VEHICLES)]),
    # 923 plate .. 969 eggnog: dishes, vegetables, fruit, drinks
    ("food", [(923, 969)]),
    # 970-980 alp .. volcano (landscapes); 984-998 rapeseed .. ear
    # (flowers, seeds, fungi)
    ("landscape/plant", [(970, 980), (984, 998)]),
    # the rest: 398-922 artifacts other than vehicles, 981-983, 999
    ("object", None),
]


def group_matrix():
    """[CLASSES, G] 0/1 matrix: row c has a 1 in the column of c's group."""
    group_of = np.full(CLASSES, -1)
    for g, (name, ranges) in enumerate(COARSE_GROUPS):
        for lo, hi in ranges or []:
            for c in range(lo, hi + 1):
                assert group_of[c] == -1, f"class {c} is in {name} and another group"
                group_of[c] = g
    rest = len(COARSE_GROUPS) - 1
    assert COARSE_GROUPS[rest][1] is None
    group_of[group_of == -1] = rest
    matrix = np.zeros((CLASSES, len(COARSE_GROUPS)), dtype=np.float32)
    matrix[np.arange(CLASSES), group_of] = 1.0
    return group_of, matrix


def tensor(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def save_head(file_name, nodes, output, initializers, doc):
    graph = helper.make_graph(
        nodes, file_name[: -len(".onnx")], [tensor("features", ["N", FEATURES])], [output], initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="spectradb scripts/make_heads.py",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(model_dir, file_name))


def build():
    full = onnx.load(full_path)
    graph = full.graph
    gemm = graph.node[-1]
    flatten = graph.node[-2]
    assert gemm.op_type == "Gemm" and list(gemm.output) == [graph.output[0].name]
    assert flatten.op_type == "Flatten" and gemm.input[0] == flatten.output[0]
    assert [(a.name, a.i) for a in gemm.attribute if a.name in ("transA", "transB")] == [("transB", 1)]
    weights = {i.name: i for i in graph.initializer}
    weight = numpy_helper.to_array(weights[gemm.input[1]])
    bias = numpy_helper.to_array(weights[gemm.input[2]])
    assert weight.shape == (CLASSES, FEATURES) and bias.shape == (CLASSES,)

    # 1. Backbone: drop the Gemm and its weights, name the flatten output.
    backbone = copy.deepcopy(full)
    g = backbone.graph
    g.node.remove(g.node[-1])
    g.node[-1].output[0] = "features"
    for name in gemm.input[1:]:
        g.initializer.remove(next(i for i in g.initializer if i.name == name))
    n_dim = copy.deepcopy(g.input[0].type.tensor_type.shape.dim[0])
    del g.output[:]
    out = tensor("features", [FEATURES])
    out.type.tensor_type.shape.dim.insert(0, n_dim)
    g.output.append(out)
    g.name = "mobilenet_v2_backbone"
    backbone.producer_name = "spectradb scripts/make_heads.py"
    backbone.producer_version = ""
    backbone.doc_string = (
        "MobileNetV2 (ImageNet-1k) backbone: mobilenet_v2_imagenet.onnx cut after "
        "global average pooling and flatten by scripts/make_heads.py. Input as the "
        "full model; output `features` [N, 1280]."
    )
    onnx.checker.check_model(backbone, full_check=True)
    onnx.save(backbone, os.path.join(model_dir, "mobilenet_v2_backbone.onnx"))

    def classifier(output):
        inits = [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")]
        node = helper.make_node("Gemm", ["features", "weight", "bias"], [output], transB=1)
        return node, inits

    # 2. Classifier head: the full model's Gemm, unchanged.
    node, inits = classifier("logits")
    save_head(
        "mobilenet_v2_head.onnx",
        [node],
        tensor("logits", ["N", CLASSES]),
        inits,
        "MobileNetV2 ImageNet-1k classifier head: the final Gemm of mobilenet_v2_imagenet.onnx "
        "(same weights), made by scripts/make_heads.py. `features` [N, 1280] from "
        "mobilenet_v2_backbone.onnx -> `logits` [N, 1000] (labels imagenet_classes.txt).",
    )

    # 3. Embedding head: x / max(||x||, eps).
    eps = numpy_helper.from_array(np.array(EPSILON, dtype=np.float32), "epsilon")
    save_head(
        "mobilenet_v2_embed.onnx",
        [
            helper.make_node("ReduceL2", ["features"], ["norm"], axes=[1], keepdims=1),
            helper.make_node("Max", ["norm", "epsilon"], ["safe_norm"]),
            helper.make_node("Div", ["features", "safe_norm"], ["embedding"]),
        ],
        tensor("embedding", ["N", FEATURES]),
        [eps],
        "MobileNetV2 embedding head, made by scripts/make_heads.py: `features` [N, 1280] "
        "from mobilenet_v2_backbone.onnx -> `embedding` = features / max(L2 norm, 1e-12) "
        "[N, 1280], unit length for cosine similarity (zero stays zero).",
    )

    # 4. Coarse head: classifier -> softmax -> per-group sums.
    _, matrix = group_matrix()
    node, inits = classifier("logits")
    save_head(
        "mobilenet_v2_coarse.onnx",
        [
            node,
            helper.make_node("Softmax", ["logits"], ["class_probabilities"], axis=1),
            helper.make_node("MatMul", ["class_probabilities", "groups"], ["probabilities"]),
        ],
        tensor("probabilities", ["N", len(COARSE_GROUPS)]),
        inits + [numpy_helper.from_array(matrix, "groups")],
        "MobileNetV2 coarse ImageNet groups head, made by scripts/make_heads.py: "
        "`features` [N, 1280] from mobilenet_v2_backbone.onnx -> the ImageNet classifier "
        "of mobilenet_v2_imagenet.onnx -> softmax -> summed probability of each of "
        f"{len(COARSE_GROUPS)} groups of class indices -> `probabilities` "
        f"[N, {len(COARSE_GROUPS)}] (labels coarse_classes.txt; argmax is the group).",
    )
    with open(os.path.join(model_dir, "coarse_classes.txt"), "w") as f:
        f.write("".join(name + "\n" for name, _ in COARSE_GROUPS))


def load_photo(path):
    """ImageNet preprocessing: RGB, shorter side to 256, centre crop 224,
    x/255, mean/std, NCHW."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = 256 / min(w, h)
        im = im.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - 224) // 2, (h - 224) // 2
        im = im.crop((left, top, left + 224, top + 224))
        x = np.asarray(im, dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)


def verify():
    import onnxruntime as ort

    def session(name):
        return ort.InferenceSession(os.path.join(model_dir, name), providers=["CPUExecutionProvider"])

    def run(sess, x):
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    full, backbone, head, embed, coarse = (
        session(n)
        for n in (
            "mobilenet_v2_imagenet.onnx",
            "mobilenet_v2_backbone.onnx",
            "mobilenet_v2_head.onnx",
            "mobilenet_v2_embed.onnx",
            "mobilenet_v2_coarse.onnx",
        )
    )
    for name, sess in [("backbone", backbone), ("head", head), ("embed", embed), ("coarse", coarse)]:
        i, o = sess.get_inputs()[0], sess.get_outputs()[0]
        print(f"{name}: {i.name} {i.shape} -> {o.name} {o.shape}")

    with open(os.path.join(model_dir, "imagenet_classes.txt")) as f:
        labels = [line.rstrip("\n").split(",")[0] for line in f]
    for i, name in VEHICLES.items():
        assert labels[i] == name, f"class {i} is {labels[i]}, not {name}"
    group_of, _ = group_matrix()
    groups = [name for name, _ in COARSE_GROUPS]

    photos_dir = os.path.join(data_dir, "photos")
    paths = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(photos_dir)
        for f in files
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    x = np.stack([load_photo(p) for p in paths])

    # One batch of every photo: also exercises the dynamic batch dimension.
    logits = run(full, x)
    features = run(backbone, x)
    split = run(head, features)
    unit = run(embed, features)
    coarse_p = run(coarse, features)

    # What the coarse head must compute: the full model's softmax summed per group.
    _, matrix = group_matrix()
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    expected = (e / e.sum(axis=1, keepdims=True)) @ matrix

    failures, disagree = [], []
    for k, path in enumerate(paths):
        name = os.path.relpath(path, photos_dir)
        diff = float(np.abs(split[k] - logits[k]).max())
        top, split_top = int(logits[k].argmax()), int(split[k].argmax())
        norm = float(np.linalg.norm(unit[k]))
        direction = float(np.abs(unit[k] - features[k] / np.linalg.norm(features[k])).max())
        g = int(coarse_p[k].argmax())
        coarse_diff = float(np.abs(coarse_p[k] - expected[k]).max())
        ok = diff < 1e-4 and top == split_top
        ok = ok and abs(norm - 1) < 1e-5 and direction < 1e-6
        ok = ok and coarse_diff < 1e-5 and g == int(expected[k].argmax())
        if not ok:
            failures.append(name)
        if g != group_of[top]:
            disagree.append(name)
        print(
            f"{'ok  ' if ok else 'FAIL'} {name}: top-1 {top} {labels[top]} "
            f"(group {groups[group_of[top]]}); max |head(backbone) - full| {diff:.1e}; "
            f"|embedding| {norm:.6f}; coarse {groups[g]} {coarse_p[k, g]:.3f}, "
            f"max |coarse - group sums of full| {coarse_diff:.1e}"
        )

    print(f"{len(paths) - len(failures)} of {len(paths)} photos pass")
    # Not a failure: the group with the most probability mass need not hold
    # the top-1 class (mass spread over many similar classes adds up).
    print(
        f"coarse argmax is the group of the full model's top-1 class on "
        f"{len(paths) - len(disagree)} of {len(paths)} photos; differs on: {', '.join(disagree) or 'none'}"
    )

    zero = run(embed, np.zeros((1, FEATURES), dtype=np.float32))
    zero_ok = bool(np.isfinite(zero).all() and not zero.any())
    print(f"embedding of a zero vector is zero: {zero_ok}")
    if not zero_ok:
        failures.append("embedding of a zero vector")

    if failures:
        print(f"FAILED: {failures}")
        sys.exit(1)
    print("all checks pass")


if __name__ == "__main__":
    build()
    verify()
