CREATE IMAGE TABLE photos FROM 'tests/data/photos/dev/opencv_*.jpg';;
