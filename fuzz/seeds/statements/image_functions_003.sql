SELECT to_png(image, 1), to_png(image, 3), to_png(image) FROM photos WHERE uri LIKE '%apple%';
