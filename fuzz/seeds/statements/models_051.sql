CREATE MODEL tiny_class FROM 'tests/data/models/tiny_rgb.onnx' WITH (output = 'class', size = 32, layout = 'nchw', mean = '0,0,0', std = '1');;
