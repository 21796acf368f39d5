SELECT * FROM gray;
