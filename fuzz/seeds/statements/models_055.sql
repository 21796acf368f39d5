SELECT l2_distance([0.0, 0.0], [3.0, 4.0]), cosine_similarity([1.0, 0.0], [0.0, 2.0]), round(cosine_distance([1.0, 1.0], [2.0, 2.0]), 9);
