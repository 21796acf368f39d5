SELECT cosine_similarity([0.0, 0.0], [1.0, 1.0]);
