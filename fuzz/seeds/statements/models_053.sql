SELECT uri FROM colors ORDER BY cosine_distance(tiny_scores(image), [0.0, 0.0, 1.0]) LIMIT 1;
