SET spectradb.read_format = 'rgb s1 28';
