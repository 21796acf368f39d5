SHOW FORMATS FOR cnn ON fashion;
