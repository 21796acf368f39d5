SET spectradb.accuracy_target = 1.5;
