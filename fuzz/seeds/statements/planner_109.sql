RESET spectradb.nope;
