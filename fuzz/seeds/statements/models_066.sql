CREATE MODEL bad FROM 'tests/data/models/mobilenet_v2_imagenet.onnx';
