"""Datasets by name, and the `tf.data` input pipelines of training and eval.

* `cluttered_digits` (the default): generated offline from scikit-learn's
  digits, see `cluttered_digits`. Splits `train`, `test`.
  `cluttered_digits_64`: its harder variant, 64x64 canvases.
* `cifar10`: tensorflow-datasets (downloaded by tfds on first use), or the
  original's TF-Slim TFRecords when `dataset_dir` is given. Splits `train`,
  `test`.
* `imagenet2012`: tensorflow-datasets, prepared from the ILSVRC 2012 tar
  files in a manual directory (`tfds_manual_dir`), or the original's TF-Slim
  TFRecords in `dataset_dir`. Splits `train`, `validation`. 1001 classes as
  the original (class 0 is "background"; tfds labels are shifted by one).

A split may be sliced by example index, as in tensorflow-datasets:
`"train[:-1000]"` (all but the last 1,000 training examples) and
`"train[-1000:]"` (those 1,000) train on one part and hold out the other,
for choices that must not see the test split (LesionResNet's deletions).
Slices are of the stored order, so they are the same in every run; the
original's TF-Slim TFRecords cannot be sliced.

Examples are `{"image": uint8 [h, w, 3], "label": int64 [], "boxes":
float32 [n, 4]}`; pipelines yield batches `{"images": float32 [b, s, s, 3],
"labels": int64 [b]}` plus, for evaluation on the cluttered digits,
`"object_mask": float32 [b, s, s, 1]` (1 on the digit's box).
"""

import logging
import re
import socket

import tensorflow as tf
import tensorflow_datasets as tfds

from sact_tf.data import cluttered_digits
from sact_tf.data import preprocessing
from sact_tf.data import tfrecords

def _digits_spec(variant):
  """The `DATASETS` entry of a cluttered digits variant."""
  return {"family": "cifar", "num_classes": cluttered_digits.NUM_CLASSES,
          "image_size": cluttered_digits.VARIANTS[variant].canvas_size,
          "flip": False, "splits": cluttered_digits.NUM_EXAMPLES,
          "eval_split": "test", "label_offset": 0,
          "shuffle_buffer": cluttered_digits.NUM_EXAMPLES["train"]}


# family: the models and preprocessing; image_size: the default input size;
# splits: examples per split (for the TF-Slim data the original's
# SPLITS_TO_SIZES); flip: random left-right flips in training;
# label_offset: added to tfds labels; shuffle_buffer: examples shuffled in
# training.
DATASETS = {
    **{variant: _digits_spec(variant)
       for variant in cluttered_digits.VARIANTS},
    "cifar10": {
        "family": "cifar", "num_classes": 10, "image_size": 32, "flip": True,
        "splits": {"train": 50000, "test": 10000}, "eval_split": "test",
        "label_offset": 0, "shuffle_buffer": 10000},
    "imagenet2012": {
        "family": "imagenet", "num_classes": 1001, "image_size": 224,
        "flip": True, "splits": {"train": 1281167, "validation": 50000},
        "eval_split": "validation", "label_offset": 1,
        "shuffle_buffer": 2048},
}


# Where tensorflow-datasets downloads each of its data sets from (None:
# files downloaded by hand, in `tfds_manual_dir`), and how long a
# connection may take.
DOWNLOADS = {"cifar10": "www.cs.toronto.edu", "imagenet2012": None}
DOWNLOAD_TIMEOUT_S = 5


def info(name):
  """The `DATASETS` entry of `name`; ValueError for an unknown dataset."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: "
                     f"{', '.join(sorted(DATASETS))}")
  return DATASETS[name]


_SLICE = re.compile(r"^(\w+)\[(-?\d*):(-?\d*)\]$")


def parse_split(split):
  """`"train[:-1000]"` -> `("train", slice(None, -1000))`; no brackets: all.

  Raises:
    ValueError: a bracket that is not `[start:stop]` of integers.
  """
  if "[" not in split:
    return split, slice(None)
  match = _SLICE.match(split)
  if not match:
    raise ValueError(f"a split slice is NAME[START:STOP] with integers, "
                     f"received split={split!r}")
  bounds = [int(b) if b else None for b in match.group(2, 3)]
  return match.group(1), slice(*bounds)


def split_size(name, split):
  """The number of examples of `split` (sliced or not) of dataset `name`."""
  base, part = parse_split(split)
  return len(range(info(name)["splits"][base])[part])


def complement_split(split):
  """The held-out rest of a sliced split, or None.

  `"train[:-1000]"` -> `"train[-1000:]"`, `"train[500:]"` -> `"train[:500]"`;
  None for a split without a slice or a slice with both bounds.
  """
  base, part = parse_split(split)
  if part.start is None and part.stop is not None:
    return f"{base}[{part.stop}:]"
  if part.stop is None and part.start is not None:
    return f"{base}[:{part.start}]"
  return None


def check(name, split, dataset_dir=None, tfds_data_dir=None,
          tfds_manual_dir=None):
  """Validates a dataset, split and its data before any work.

  The data must be there or be downloadable: the original's TFRecords in
  `dataset_dir`, the data set prepared in tensorflow-datasets' data
  directory, or its download reachable (`check_tfds_available`).

  Returns:
    The TF-Slim files (list of str) when `dataset_dir` is given, else None.
  """
  files = _check_split(name, split, dataset_dir)
  if files is None and name in DOWNLOADS:
    check_tfds_available(name, tfds_data_dir, tfds_manual_dir)
  return files


def _check_split(name, split, dataset_dir=None):
  """Validates a dataset, split and (TF-Slim) directory; `check`'s files."""
  splits = info(name)["splits"]
  base, part = parse_split(split)
  if base not in splits:
    raise ValueError(f"{name} has the splits {sorted(splits)}, received "
                     f"split_name={split!r}")
  if not split_size(name, split):
    raise ValueError(f"split {split!r} of {name} has no examples (the "
                     f"split has {splits[base]})")
  if dataset_dir is None:
    return None
  if part != slice(None):
    raise ValueError(f"the original's TFRecords cannot be sliced, received "
                     f"split_name={split!r} with --dataset_dir")
  if name not in tfrecords.FILE_PATTERNS:
    raise ValueError(f"--dataset_dir is for the original's TFRecords of "
                     f"{sorted(tfrecords.FILE_PATTERNS)}; {name} is generated "
                     f"offline and takes none (received {dataset_dir!r})")
  return tfrecords.list_files(name, split, dataset_dir)


def check_tfds_available(name, tfds_data_dir=None, tfds_manual_dir=None):
  """Raises unless tensorflow-datasets has `name` or can get it now.

  Without this, tensorflow-datasets retries an unreachable download for
  minutes and ends in a traceback.

  Raises:
    ValueError: one line naming the data set and the flags that point at
      local data.
  """
  # tensorflow-datasets warns of a data folder it finds unprepared; the
  # error below says so, with what to do.
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir)
    if builder.is_prepared():
      return
  finally:
    absl_logger.setLevel(level)
  host = DOWNLOADS[name]
  if host is None:
    if tfds_manual_dir and tf.io.gfile.listdir(tfds_manual_dir):
      return
    reason = (f"its files must be downloaded by hand into --tfds_manual_dir "
              f"(received {tfds_manual_dir!r})")
  else:
    try:
      socket.create_connection((host, 443), DOWNLOAD_TIMEOUT_S).close()
      return
    except OSError as e:
      reason = f"{host} is unreachable: {e}"
  local = "--tfds_data_dir with it prepared"
  if name in tfrecords.FILE_PATTERNS:
    local += " or --dataset_dir with the original's TFRecords"
  raise ValueError(f"{name} is not prepared in {builder.data_dir!r} and "
                   f"cannot be downloaded ({reason}); pass {local}")


def _shard(dataset, input_context):
  if input_context and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  return dataset


def _decode_tfds(example, label_offset):
  image = tf.io.decode_image(example["image"], channels=3,
                             expand_animations=False)
  return {"image": image, "label": example["label"] + label_offset,
          "boxes": tf.zeros([0, 4], tf.float32)}


def load_examples(name, split, dataset_dir=None, tfds_data_dir=None,
                  tfds_manual_dir=None, shuffle_buffer=0, input_context=None,
                  seed=None):
  """A `tf.data.Dataset` of decoded examples (see the module docstring).

  Args:
    name: str, a key of `DATASETS`.
    split: str.
    dataset_dir: str or None, the original's TF-Slim TFRecords.
    tfds_data_dir: str or None, tensorflow-datasets' `data_dir`.
    tfds_manual_dir: str or None, where the ImageNet tar files are.
    shuffle_buffer: int, shuffle (training) in a buffer of this size, before
      images are decoded. 0: the stored order.
    input_context: `tf.distribute.InputContext` or None: its pipeline's share.
    seed: int or None.
  """
  files = _check_split(name, split, dataset_dir)
  if files:
    return tfrecords.load(name, files, shuffle_buffer, input_context, seed)
  if name in cluttered_digits.VARIANTS:
    base, part = parse_split(split)
    data = cluttered_digits.load(base, name)
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": data["image"][part], "label": data["label"][part],
         "boxes": data["box"][part, None, :]})
    dataset = _shard(dataset, input_context)
    if shuffle_buffer:
      dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    return dataset
  builder = tfds.builder(name, data_dir=tfds_data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=tfds_manual_dir))
  dataset = builder.as_dataset(
      split=split, shuffle_files=bool(shuffle_buffer),
      decoders={"image": tfds.decode.SkipDecoding()},
      read_config=tfds.ReadConfig(shuffle_seed=seed))
  dataset = _shard(dataset, input_context)
  if shuffle_buffer:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  offset = info(name)["label_offset"]
  return dataset.map(lambda e: _decode_tfds(e, offset),
                     num_parallel_calls=tf.data.AUTOTUNE)


def _object_mask(boxes, image_size):
  """1 inside the first box, `[s, s, 1]` float32 (boxes normalized)."""
  coords = tf.cast(tf.round(boxes[0] * image_size), tf.int32)
  ys = tf.range(image_size)[:, None]
  xs = tf.range(image_size)[None, :]
  inside = ((ys >= coords[0]) & (ys < coords[2]) & (xs >= coords[1]) &
            (xs < coords[3]))
  return tf.cast(inside, tf.float32)[..., None]


def make_input_fn(name, split, global_batch_size, training, image_size=None,
                  num_examples=None, dataset_dir=None, tfds_data_dir=None,
                  tfds_manual_dir=None, seed=None):
  """The input function of `strategy.distribute_datasets_from_function`.

  Args:
    name, split, dataset_dir, tfds_data_dir, tfds_manual_dir: see
      `load_examples`.
    global_batch_size: int, the batch over all replicas.
    training: bool. Training shuffles, augments and repeats forever with
      full batches; evaluation is one pass, the last batch may be partial.
    image_size: int or None (the dataset's default).
    num_examples: int or None, evaluate only the first `num_examples` (with
      several input pipelines, as many in all, rounded up).
    seed: int or None, shuffling seed.

  Returns:
    `input_fn(input_context=None) -> tf.data.Dataset` of batches (see the
    module docstring) of the replica's batch size.
  """
  spec = info(name)
  family = spec["family"]
  size = image_size or spec["image_size"]
  with_mask = (not training and name in cluttered_digits.VARIANTS and
               size == spec["image_size"])

  def preprocess(example):
    if training:
      image = preprocessing.preprocess_for_train(
          example["image"], family, size, example["boxes"], spec["flip"])
    else:
      image = preprocessing.preprocess_for_eval(example["image"], family,
                                                size)
    batch = {"images": image, "labels": example["label"]}
    if with_mask:
      batch["object_mask"] = _object_mask(example["boxes"], size)
    return batch

  def input_fn(input_context=None):
    batch_size = (input_context.get_per_replica_batch_size(global_batch_size)
                  if input_context else global_batch_size)
    dataset = load_examples(
        name, split, dataset_dir, tfds_data_dir, tfds_manual_dir,
        spec["shuffle_buffer"] if training else 0, input_context, seed)
    if training:
      dataset = dataset.repeat()
    elif num_examples:
      pipelines = input_context.num_input_pipelines if input_context else 1
      dataset = dataset.take(-(-num_examples // pipelines))
    dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)

  return input_fn
