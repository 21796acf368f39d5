CREATE MODEL bad FROM 'tests/data/models/tiny_dct.onnx' WITH (input = 'coefficients', bands = 5);
