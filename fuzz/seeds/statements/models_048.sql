CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' WITH (labels = 'tests/data/models/tiny_rgb_labels.txt');;
