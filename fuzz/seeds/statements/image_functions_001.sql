SELECT count(*), sum(CASE WHEN width(image) = width AND height(image) = height THEN 1 ELSE 0 END) FROM photos;
