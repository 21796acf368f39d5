SELECT count(*), count(DISTINCT id), min(label) FROM photos;
