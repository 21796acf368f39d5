CREATE IMAGE TABLE "my-table" FROM 'tests/data/photos/dev';
