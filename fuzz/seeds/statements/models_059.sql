CREATE MODEL dct FROM 'tests/data/models/tiny_dct.onnx' WITH (input = 'coefficients', bands = 4, output = 'scores');;
