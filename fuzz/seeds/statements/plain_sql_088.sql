CREATE EXTERNAL TABLE captions STORED AS CSV LOCATION 'tests/data/captions.csv' OPTIONS ('format.has_header' 'true');;
