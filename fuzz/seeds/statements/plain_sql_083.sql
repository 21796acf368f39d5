SELECT uri, width, rank() OVER (ORDER BY width DESC, id) AS r FROM photos ORDER BY r LIMIT 3;
