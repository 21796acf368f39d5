SELECT cnn(image) FROM fashion;
