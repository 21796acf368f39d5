DROP TABLE broken;
