SELECT thumbnail(image, 0) FROM photos;
