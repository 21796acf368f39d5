CREATE IMAGE TABLE IF NOT EXISTS photos FROM 'tests/data/photos/dev';
