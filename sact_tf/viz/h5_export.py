"""The original `summary_utils.export_to_h5` (`imagenet_export.py`): what an
ACT or SACT model computes on N examples, in one HDF5 file.

Datasets (first axis: the examples, in input order), named as the original:

* `images`: float32 `[N, H, W, 3]`, the model inputs (preprocessed);
* `flops`: int64 `[N]`;
* per block (`block_1..3` CIFAR, `block1..4` ImageNet) `<block>/ponder_cost`
  (float32), `<block>/num_units` (int32), `<block>/halting_distribution`
  (float32, last axis the units), `<block>/flops` (int64): `[N]` (ACT) or
  `[N, h, w]` (SACT);
* SACT: `ponder_cost_map`, `num_units_map`, float32 `[N, H, W, 1]`;
* new: `labels` (int64 `[N]`) and `object_mask` (float32 `[N, H, W, 1]`,
  1 on the object, for datasets that have one) when the input has them.

Attributes: `block_scopes` (the block names), `family` (`"cifar"` or
`"imagenet"`, how to show `images`), `model_type`.
"""

import h5py
import numpy as np
import tensorflow as tf

from sact_tf.data import datasets
from sact_tf.training import checkpoint_io
from sact_tf.utils import checks
from sact_tf.utils import files

_BLOCK_KEYS = ("ponder_cost", "num_units", "halting_distribution", "flops")
_MAP_KEYS = ("ponder_cost_map", "num_units_map")
_INPUT_KEYS = ("labels", "object_mask")


def _append(output, key, values):
  values = np.asarray(values)
  if key not in output:
    output.create_dataset(key, data=values, maxshape=(None,) + values.shape[1:],
                          chunks=True, compression="lzf")
    return
  dataset = output[key]
  start = dataset.shape[0]
  dataset.resize(start + values.shape[0], axis=0)
  dataset[start:] = values


def export_to_h5(model, batches, path, num_examples, family, overwrite=False):
  """Runs `model` on the first `num_examples` examples and writes the file.

  Args:
    model: an ACT (`"act"`, `"act_early_stopping"`) or SACT `CifarResNet`
      / `ImageNetResNet` with its weights.
    batches: iterable of dicts with `images` (float32 `[b, H, W, 3]`, the
      preprocessed inputs) and optionally `labels` and `object_mask`, e.g. a
      `tf.data.Dataset` of `sact_tf.data.datasets.make_input_fn`.
    path: str, the HDF5 file; written atomically.
    num_examples: int > 0, at most this many examples (fewer when `batches`
      ends first).
    family: str, `"cifar"` or `"imagenet"`, stored for drawing the images.
    overwrite: bool, replace an existing `path`. Defaults to False.

  Returns:
    int, the number of examples written.

  Raises:
    ValueError: a vanilla model, `num_examples` < 1, no examples, or `path`
      exists.
  """
  if model.model_type == "vanilla":
    raise ValueError("a vanilla model has no ponder cost to export; expected "
                     "model_type act, act_early_stopping or sact")
  checks.check_int("num_examples", num_examples)
  files.check_writable_output(path, overwrite)
  blocks = [block.name for block in model.blocks]
  keys = ["flops"] + [f"{b}/{k}" for b in blocks for k in _BLOCK_KEYS]
  if model.model_type == "sact":
    keys += _MAP_KEYS
  predict = tf.function(lambda images: model(images, training=False),
                        reduce_retracing=True)
  written = 0
  with files.atomic_output(path, overwrite) as tmp:
    with h5py.File(tmp, "w") as output:
      output.attrs["block_scopes"] = blocks
      output.attrs["family"] = family
      output.attrs["model_type"] = model.model_type
      for batch in batches:
        images = np.asarray(batch["images"])[:num_examples - written]
        end_points = predict(tf.constant(images))
        _append(output, "images", images)
        for key in keys:
          _append(output, key, end_points[key].numpy())
        for key in _INPUT_KEYS:
          if key in batch:
            _append(output, key,
                    np.asarray(batch[key])[:images.shape[0]])
        written += images.shape[0]
        if written == num_examples:
          break
      if not written:
        raise ValueError("the input holds no examples")
  return written


def export_checkpoint(checkpoint_dir, export_path, num_examples=1000,
                      batch_size=32, split_name=None, dataset_dir=None,
                      use_ema=None, overwrite=False):
  """`export_to_h5` of a checkpoint's model on its run's evaluation data.

  Args:
    checkpoint_dir: str, see `checkpoint_io.restore_model`.
    export_path: str, the HDF5 file.
    num_examples: int, the first examples of the split.
    batch_size: int.
    split_name: str or None, default the dataset's evaluation split.
    dataset_dir: str or None, the original's TF-Slim TFRecords; default the
      run's.
    use_ema: bool or None, see `checkpoint_io.restore_model`.
    overwrite: bool.

  Returns:
    `(number of examples written, run configuration)`.
  """
  checks.check_int("batch_size", batch_size)
  files.check_writable_output(export_path, overwrite)
  model, config = checkpoint_io.restore_model(checkpoint_dir, use_ema,
                                              execution="sparse")
  name = config["dataset"]
  split = split_name or datasets.info(name)["eval_split"]
  datasets.check(name, split, dataset_dir or config.get("dataset_dir"),
                 config.get("tfds_data_dir"), config.get("tfds_manual_dir"))
  input_fn = datasets.make_input_fn(
      name, split, batch_size, training=False,
      image_size=config["image_size"], num_examples=num_examples,
      dataset_dir=dataset_dir or config.get("dataset_dir"),
      tfds_data_dir=config.get("tfds_data_dir"))
  count = export_to_h5(model, input_fn(), export_path, num_examples,
                       config["family"], overwrite)
  return count, config
