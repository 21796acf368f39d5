CREATE IMAGE TABLE fashion FROM 'tests/data/fashion' WITH (label = 'parent_dir', chroma = 'gray');;
