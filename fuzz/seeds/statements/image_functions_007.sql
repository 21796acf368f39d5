SELECT to_png(NULL::bytea);
