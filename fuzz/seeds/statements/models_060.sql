SELECT uri, round(dct(image)[1]), round(dct(image)[5]), round(dct(image)[9]) FROM colors ORDER BY uri;
