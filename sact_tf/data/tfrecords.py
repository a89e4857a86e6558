"""The original release's data: TF-Slim TFRecord files in `--dataset_dir`.

* CIFAR-10 (`download_and_convert_cifar10.py`): `cifar10_train.tfrecord`,
  `cifar10_test.tfrecord`; `image/encoded` PNG 32x32x3,
  `image/class/label` 0-9.
* ImageNet (the Inception `build_imagenet_data.py`): `train-*-of-*`,
  `validation-*-of-*`; `image/encoded` JPEG, `image/class/label` 1-1000
  (0 is the background class of the 1001-way models),
  `image/object/bbox/{ymin,xmin,ymax,xmax}` (normalized, any number).

Examples decode to `{"image": uint8 [h, w, 3], "label": int64 [],
"boxes": float32 [num_boxes, 4]}` (`ymin, xmin, ymax, xmax`).
"""

import os

import tensorflow as tf

FILE_PATTERNS = {"cifar10": "cifar10_{split}.tfrecord",
                 "imagenet2012": "{split}-*"}
_BOX_KEYS = ("ymin", "xmin", "ymax", "xmax")
_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}
_BOX_FEATURES = {f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32)
                 for k in _BOX_KEYS}


def _features(name):
  return dict(_FEATURES, **(_BOX_FEATURES if name == "imagenet2012" else {}))


def list_files(name, split, dataset_dir):
  """The TFRecord files of a split, checked to exist and to be readable.

  Reads and decodes the first example of every file, so a missing
  directory, a directory without the split's files, a file that is not a
  TFRecord (or is truncated or corrupt at its start) or of another format
  fails here, before any training, with one clear ValueError. Damage
  further inside a file shows when the pipeline reaches it.

  Args:
    name: str, `"cifar10"` or `"imagenet2012"`.
    split: str, e.g. `"train"`, `"test"` or `"validation"`.
    dataset_dir: str, the directory.

  Returns:
    Sorted list of file paths.
  """
  if not dataset_dir or not tf.io.gfile.isdir(dataset_dir):
    raise ValueError(f"--dataset_dir {dataset_dir!r} does not exist or is "
                     f"not a directory")
  pattern = os.path.join(dataset_dir, FILE_PATTERNS[name].format(split=split))
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise ValueError(f"--dataset_dir {dataset_dir!r} has no {name} "
                     f"{split!r} files (looked for {pattern})")
  for path in files:
    try:
      record = next(iter(tf.data.TFRecordDataset(path)), None)
      if record is None:
        raise ValueError("it holds no records")
      decode(name, record)
    except (tf.errors.OpError, ValueError) as e:
      message = (e.message if isinstance(e, tf.errors.OpError) else str(e))
      raise ValueError(f"corrupt or foreign TFRecord file {path}: "
                       f"{message.strip().splitlines()[0]}") from None
  return files


def decode(name, record):
  """Parses and decodes one serialized `tf.train.Example` (see the module)."""
  parsed = tf.io.parse_single_example(record, _features(name))
  image = tf.io.decode_image(parsed["image/encoded"], channels=3,
                             expand_animations=False)
  if name == "imagenet2012":
    boxes = tf.stack([tf.sparse.to_dense(parsed[f"image/object/bbox/{k}"])
                      for k in _BOX_KEYS], axis=1)
  else:
    boxes = tf.zeros([0, 4], tf.float32)
  return {"image": image, "label": parsed["image/class/label"],
          "boxes": boxes}


def load(name, files, shuffle_buffer=0, input_context=None, seed=None):
  """A `tf.data.Dataset` of decoded examples of `files`.

  Args:
    name: str, `"cifar10"` or `"imagenet2012"`.
    files: list of str, from `list_files`.
    shuffle_buffer: int. When positive (training), the file order is
      shuffled and so are the serialized records, in a buffer of this size,
      before they are decoded.
    input_context: `tf.distribute.InputContext` or None. With several input
      pipelines each reads its share: whole files when there are at least
      as many files as pipelines, else every n-th record.
    seed: int or None, the file shuffling seed.
  """
  dataset = tf.data.Dataset.from_tensor_slices(files)
  pipelines = input_context.num_input_pipelines if input_context else 1
  by_file = pipelines > 1 and len(files) >= pipelines
  if by_file:
    dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
  if shuffle_buffer:
    dataset = dataset.shuffle(len(files), seed=seed)
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle_buffer)
  if pipelines > 1 and not by_file:
    dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
  if shuffle_buffer:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  return dataset.map(lambda r: decode(name, r),
                     num_parallel_calls=tf.data.AUTOTUNE)
