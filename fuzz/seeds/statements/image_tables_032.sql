CREATE IMAGE TABLE gray FROM 'tests/data/photos/jpeg-variants/flower_small*' WITH (chroma = 'gray', quality = 75);;
