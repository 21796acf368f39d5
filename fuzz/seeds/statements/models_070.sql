CREATE MODEL width FROM 'tests/data/models/tiny_rgb.onnx';
