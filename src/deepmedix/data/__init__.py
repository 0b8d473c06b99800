"""Data: the sample format, dataset converters, images and the coordinate frame."""
