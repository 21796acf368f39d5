CREATE MODEL bad FROM 'tests/data/models/tiny_rgb.onnx' WITH (labels = 'tests/data/models/imagenet_classes.txt');
