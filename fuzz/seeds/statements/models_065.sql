CREATE MODEL bad FROM 'tests/data/models/tiny_rgb.onnx' WITH (layout = 'nhwc');
