RESET spectradb.read_format;
