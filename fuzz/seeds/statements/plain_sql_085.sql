SELECT count(*), count(DISTINCT label), max(width) >= min(width) FROM photos;
