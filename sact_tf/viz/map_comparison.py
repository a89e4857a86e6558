"""The maps of several models side by side on the same test images.

SACT's ponder cost map (`ponder_cost_map`, units run per position, summed
over blocks) and the sampling family's density map (`sampling_density_map`,
the sampled fraction per position, averaged over blocks) answer the same
question, where a network computes, in different units. `checkpoint_maps`
runs several evaluated runs on the first examples of their (common) test
split; `draw_map_comparison` draws one row per example: the input, then one
column per model, each column on its own colour scale.
"""

import os

import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np
import tensorflow as tf

from sact_tf.data import datasets
from sact_tf.training import checkpoint_io
from sact_tf.utils import checks
from sact_tf.utils import files
from sact_tf.viz import ponder_maps

# model type: (the output drawn, what it measures).
MAP_OUTPUTS = {"sact": ("ponder_cost_map", "ponder cost"),
               "sampling": ("sampling_density_map", "sampling density")}
# The data settings that the compared runs must share.
_SHARED_SETTINGS = ("dataset", "image_size", "dataset_dir", "tfds_data_dir")


def checkpoint_maps(checkpoint_dirs, num_examples=8, split_name=None,
                    use_ema=None):
  """The maps of several runs on the same first examples of a split.

  Args:
    checkpoint_dirs: list of str, run directories (or checkpoints, see
      `checkpoint_io.restore_model`) of SACT or sampling models of one
      dataset and image size.
    num_examples: int > 0, the first examples of the split.
    split_name: str or None, default the dataset's evaluation split.
    use_ema: bool or None, see `checkpoint_io.restore_model`.

  Returns:
    dict: `images` float32 `[N, H, W, 3]` (the model inputs), `family`
    (`"cifar"` or `"imagenet"`), `object_mask` (float32 `[N, H, W]`, 1 on
    the object; None where the data has none) and `columns`, one dict per
    run in order: `name` (the directory's name), `model_type`, `label`
    (what the map measures) and `maps` (float32 `[N, H, W]`).

  Raises:
    ValueError: no run, `num_examples` < 1, a model without such maps,
      runs of different data, or data that is not there.
  """
  checks.check_int("num_examples", num_examples)
  if not checkpoint_dirs:
    raise ValueError("give one or more run directories to compare")
  runs = []
  for directory in checkpoint_dirs:
    model, config = checkpoint_io.restore_model(directory, use_ema,
                                                execution="sparse")
    if model.model_type not in MAP_OUTPUTS:
      raise ValueError(f"{directory!r} holds a {model.model_type!r} model, "
                       f"which has no map; expected one of "
                       f"{sorted(MAP_OUTPUTS)}")
    runs.append((directory, model, config))
  first = runs[0][2]
  for directory, _, config in runs[1:]:
    for key in _SHARED_SETTINGS:
      if config.get(key) != first.get(key):
        raise ValueError(f"{directory!r} has {key}={config.get(key)!r}, "
                         f"{runs[0][0]!r} {key}={first.get(key)!r}: compare "
                         f"runs on the same data")
  name = first["dataset"]
  split = split_name or datasets.info(name)["eval_split"]
  datasets.check(name, split, first.get("dataset_dir"),
                 first.get("tfds_data_dir"), first.get("tfds_manual_dir"))
  input_fn = datasets.make_input_fn(
      name, split, num_examples, training=False,
      image_size=first["image_size"], num_examples=num_examples,
      dataset_dir=first.get("dataset_dir"),
      tfds_data_dir=first.get("tfds_data_dir"))
  batch = next(iter(input_fn()))
  images = tf.convert_to_tensor(batch["images"])
  columns = []
  for directory, model, _ in runs:
    key, label = MAP_OUTPUTS[model.model_type]
    maps = model(images, training=False)[key]
    columns.append({"name": os.path.basename(os.path.normpath(directory)),
                    "model_type": model.model_type, "label": label,
                    "maps": maps.numpy()[..., 0]})
  mask = batch.get("object_mask")
  return {"images": images.numpy(), "family": first["family"],
          "object_mask": None if mask is None else mask.numpy()[..., 0],
          "columns": columns}


def draw_map_comparison(comparison, path, overwrite=False):
  """Draws the inputs and the maps of `checkpoint_maps`, one row each.

  Row `i`: the input (as `ponder_maps.display_image` shows it), then each
  run's map in viridis, one colour scale per column (its minimum to its
  maximum over the examples, a colour bar below it), each map titled with
  its mean, the object's box outlined in white where the data has one.
  The first row's titles name the run and what its map measures. Written
  atomically.

  Args:
    comparison: dict as `checkpoint_maps` returns it.
    path: str, the PNG file.
    overwrite: bool, replace an existing `path`. Defaults to False.
  """
  images = comparison["images"]
  columns = comparison["columns"]
  mask = comparison["object_mask"]
  rows = len(images)
  figure, axes = plt.subplots(
      rows, 1 + len(columns), squeeze=False,
      figsize=(1.7 * (1 + len(columns)), 1.6 * rows + 1.0))
  try:
    for i in range(rows):
      axes[i, 0].imshow(ponder_maps.display_image(images[i],
                                                  comparison["family"]))
    axes[0, 0].set_title("input", fontsize=8)
    for j, column in enumerate(columns, 1):
      maps = column["maps"]
      low, high = float(maps.min()), float(maps.max())
      for i in range(rows):
        shown = axes[i, j].imshow(maps[i], cmap=ponder_maps.COLORMAP,
                                  vmin=low, vmax=max(high, low + 1e-6))
        if mask is not None:
          axes[i, j].contour(mask[i], levels=[0.5], colors="white",
                             linewidths=0.6)
        axes[i, j].set_title(f"{maps[i].mean():.2f}", fontsize=8)
      axes[0, j].set_title(f"{column['name']}\n{column['label']}\n"
                           f"{maps[0].mean():.2f}", fontsize=8)
      figure.colorbar(shown, ax=axes[:, j].tolist(), orientation="horizontal",
                      fraction=0.03, pad=0.02)
    for ax in axes.ravel():
      ax.axis("off")
    with files.atomic_output(path, overwrite) as tmp:
      figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
  finally:
    plt.close(figure)
