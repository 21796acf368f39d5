SELECT thumbnail(image, 5000) FROM photos WHERE uri LIKE '%apple%';
