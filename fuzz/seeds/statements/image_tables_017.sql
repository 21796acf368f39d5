SELECT id, uri FROM photos ORDER BY id LIMIT 2;
