"""Input pipelines: the offline default datasets, tfds, the original's
TFRecords, COCO 2017 and box-aware image ops for detection."""
