SET spectradb.read_format = 'y s1 14';
