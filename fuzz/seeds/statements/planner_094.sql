SELECT count(*) FROM fashion WHERE cnn(image) = label;
