CREATE IMAGE TABLE colors FROM 'tests/data/colors';;
