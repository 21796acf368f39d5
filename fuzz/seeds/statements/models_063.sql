CREATE MODEL bad FROM 'tests/data/models/tiny_rgb.onnx' WITH (size = 64);
