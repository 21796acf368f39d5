SELECT label, count(*) FROM photos GROUP BY label ORDER BY label;
