CREATE IMAGE TABLE photos FROM 'tests/data/photos/dev' WITH (label = 'parent_dir');;
