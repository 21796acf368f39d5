SELECT width, height, thumbnail(image, 100) FROM photos WHERE uri LIKE '%leuvenA%';
