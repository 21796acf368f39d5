DESCRIBE photos;
