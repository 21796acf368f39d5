SELECT l2_distance('a', 'b');
