CREATE TABLE notes (photo_id BIGINT, note VARCHAR) AS VALUES (3, 'an apple'), (4, 'a baboon'), (99, 'nothing');;
