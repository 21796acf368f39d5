SET spectradb.read_format = 'auto';
