CALIBRATE cnn ON fashion USING label SAMPLE 40;
