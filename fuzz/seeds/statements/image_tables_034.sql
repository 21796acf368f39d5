DROP TABLE gray;;
