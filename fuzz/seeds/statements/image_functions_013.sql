SELECT count(*) FROM thumbs WHERE substr(encode(t, 'hex'), 1, 8) = '89504e47';
