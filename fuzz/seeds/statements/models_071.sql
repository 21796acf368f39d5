CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx';
