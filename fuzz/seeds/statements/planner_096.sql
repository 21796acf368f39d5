CALIBRATE cnn ON fashion USING colour;
