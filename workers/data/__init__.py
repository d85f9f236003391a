"""Source images, the mono dataset and its augmentation, probe datasets."""
