CREATE MODEL bad FROM 'tests/data/captions.csv';
