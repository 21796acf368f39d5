CREATE MODEL cnn FROM 'tests/data/models/fashion_mnist_cnn.onnx' WITH (labels = 'tests/data/models/fashion_mnist_classes.txt');;
