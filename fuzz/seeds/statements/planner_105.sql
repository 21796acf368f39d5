RESET spectradb.accuracy_target;
