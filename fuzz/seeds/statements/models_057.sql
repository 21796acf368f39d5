SELECT cosine_similarity([1.0, 0.0], [1.0, 0.0, 0.0]);
