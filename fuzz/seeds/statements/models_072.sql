SELECT count(*) FROM colors WHERE tiny(image) IS NOT NULL;
