SELECT to_png(image, 9) FROM photos;
