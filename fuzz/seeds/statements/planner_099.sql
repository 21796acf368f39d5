SELECT count(*) < 34 FROM fashion WHERE cnn(image) = label;
