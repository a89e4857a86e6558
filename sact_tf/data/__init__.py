"""Input pipelines: the offline default dataset, tfds, the original's TFRecords."""
