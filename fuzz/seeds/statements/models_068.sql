CREATE MODEL bad FROM 'tests/data/models/nothing.onnx';
