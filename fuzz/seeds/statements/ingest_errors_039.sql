SELECT count(*) FROM broken;
