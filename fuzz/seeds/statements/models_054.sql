SELECT bool_and(cosine_similarity(tiny_scores(image), tiny_scores(image)) > 0.9999) FROM colors;
