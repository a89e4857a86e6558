"""SavedModels for TF Serving: `BASE/<version>/` with two signatures.

* `serving_default`: `images`, float32 `[batch, S, S, 3]`, already
  preprocessed as the model's evaluation does it (`S` is the run's
  `image_size`); another shape is rejected with an error that names the
  expected one (`tf.ensure_shape`, also under TF Serving, which does not check
  the signature's shapes itself).
* `serving_bytes`: `image_bytes`, string `[batch]`, encoded JPEG or PNG
  files (any size, RGB, grayscale, CMYK, palette or RGBA), decoded and
  preprocessed in the graph with `sact_tf.data.preprocessing.
  preprocess_for_eval`. Images of more than `MAX_IMAGE_PIXELS` pixels are
  rejected before they are decoded.

Both return the outputs of `serving_outputs`. The variables are tracked with
`keras.export.ExportArchive`, so the SavedModel loads in TF Serving,
`saved_model_cli run` and TF1 sessions as well as with `tf.saved_model.load`.
"""

import os
import re
import shutil

import keras
import tensorflow as tf

from sact_tf import inference
from sact_tf.data import preprocessing
from sact_tf.training import checkpoint_io
from sact_tf.utils import files

SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"
IMAGES = "images"
IMAGE_BYTES = "image_bytes"
TOP_K = 5
PONDER_COST_SUFFIX = "_ponder_cost"
SAMPLING_DENSITY_SUFFIX = "_sampling_density"
# 50 megapixels: phone photos fit; decoding one takes 150 MB as uint8 and
# 600 MB as float32.
MAX_IMAGE_PIXELS = 50_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_VERSION_DIR = re.compile(r"^[0-9]+$")


def serving_outputs(model, images):
  """The outputs of both signatures for a batch of preprocessed images.

  Args:
    model: a `CifarResNet` or `ImageNetResNet`.
    images: float32 `[batch, H, W, 3]`.

  Returns:
    dict of tensors:
    * `logits`: float32 `[batch, num_classes]`.
    * `probabilities`: float32 `[batch, num_classes]`, the softmax.
    * `classes`: int32 `[batch, k]`, the `k = min(5, num_classes)` most
      probable classes, most probable first.
    * `flops`: int64 `[batch]`, the FLOPs spent on each image.
    * ACT and SACT: `<block>_ponder_cost`, float32 `[batch]` per block
      (`block_1..3` CIFAR, `block1..4` ImageNet; no `/` in the names, which
      `saved_model_cli run --outdir` would take for a directory): the
      block's ponder cost,
      for SACT its mean over the block's positions (what the original's
      evaluation averages).
    * SACT: `ponder_cost_map`, float32 `[batch, H, W, 1]`, the ponder cost
      of every block summed at the input resolution.
    * Sampling: `<block>_sampling_density`, float32 `[batch]`, the block's
      sampled fraction averaged over its positions, and
      `sampling_density_map`, float32 `[batch, H, W, 1]`.
  """
  end_points = model(images, training=False)
  probabilities = end_points["predictions"]
  outputs = {
      "logits": end_points["logits"],
      "probabilities": probabilities,
      "classes": tf.math.top_k(probabilities,
                               min(TOP_K, model.num_classes)).indices,
      "flops": end_points["flops"],
  }
  if model.model_type == "sampling":
    for block in model.blocks:
      outputs[block.name + SAMPLING_DENSITY_SUFFIX] = tf.reduce_mean(
          end_points[f"{block.name}/sampling_density"], [1, 2])
    outputs["sampling_density_map"] = end_points["sampling_density_map"]
  elif model.model_type != "vanilla":
    for block in model.blocks:
      cost = end_points[f"{block.name}/ponder_cost"]
      if model.model_type == "sact":
        cost = tf.reduce_mean(cost, [1, 2])
      outputs[block.name + PONDER_COST_SUFFIX] = cost
  if "ponder_cost_map" in end_points:
    outputs["ponder_cost_map"] = end_points["ponder_cost_map"]
  return outputs


def _encoded_image_shape(contents):
  """`[height, width]` int32 of a JPEG or PNG file, read from its header.

  Raises (in the graph) when `contents` is neither a JPEG nor a PNG file.
  """

  def png_shape():
    # tf.Assert, not assert_equal: its message would hold the raw bytes.
    is_png = tf.debugging.Assert(
        tf.equal(tf.strings.substr(contents, 0, len(_PNG_SIGNATURE)),
                 _PNG_SIGNATURE),
        [f"{IMAGE_BYTES} must hold JPEG or PNG files"])
    with tf.control_dependencies([is_png]):
      # The IHDR chunk: width and height, big-endian, at bytes 16-23.
      width_height = tf.io.decode_raw(tf.strings.substr(contents, 16, 8),
                                      tf.int32, little_endian=False)
    return tf.reverse(width_height, [0])

  return tf.cond(tf.io.is_jpeg(contents),
                 lambda: tf.image.extract_jpeg_shape(contents)[:2], png_shape)


def decode_image(contents, family, image_size):
  """One encoded JPEG or PNG file to the model's evaluation input.

  Args:
    contents: string scalar, the file's bytes.
    family: str, `"cifar"` or `"imagenet"` (see `preprocess_for_eval`).
    image_size: int, the model's input height and width.

  Returns:
    float32 `[image_size, image_size, 3]`.
  """
  shape = tf.cast(_encoded_image_shape(contents), tf.int64)
  small_enough = tf.debugging.assert_less_equal(
      shape[0] * shape[1], tf.constant(MAX_IMAGE_PIXELS, tf.int64),
      message=f"images may have at most {MAX_IMAGE_PIXELS} pixels")
  with tf.control_dependencies([small_enough]):
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8,
                               expand_animations=False)
  return preprocessing.preprocess_for_eval(image, family, image_size)


def version_path(export_base, version):
  """`export_base/<version>`, TF Serving's layout; version a positive int."""
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"version must be a positive integer, received "
                     f"version={version!r}")
  return os.path.join(export_base, str(version))


def existing_versions(export_base):
  """The versions (sorted ints) that `export_base` already holds."""
  if not os.path.isdir(export_base):
    return []
  return sorted(int(name) for name in os.listdir(export_base)
                if _VERSION_DIR.match(name))


def export_saved_model(model, path, family, image_size, overwrite=False):
  """Writes `model` as a SavedModel for TF Serving to `path`.

  Nothing is left at `path` (or in its parent) if the export fails.

  Args:
    model: a built `CifarResNet` or `ImageNetResNet` with its weights.
    path: str, the version directory (`version_path(base, version)`); its
      parent must exist.
    family: str, `"cifar"` or `"imagenet"`: the preprocessing of the
      `serving_bytes` signature.
    image_size: int, the input height and width of `serving_default`.
    overwrite: bool, replace an existing `path`. Defaults to False.

  Returns:
    `path`.

  Raises:
    ValueError: `path` exists (and not `overwrite`), its parent does not, or
      `family`/`image_size` are invalid.
  """
  if family not in preprocessing.FAMILIES:
    raise ValueError(f"family must be one of {preprocessing.FAMILIES}, "
                     f"received family={family!r}")
  if isinstance(image_size, bool) or not isinstance(
      image_size, int) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, received "
                     f"image_size={image_size!r}")
  files.check_writable_output(path, overwrite)
  shape = [None, image_size, image_size, 3]

  def serve_images(images):
    return serving_outputs(model, tf.ensure_shape(images, shape))

  def serve_bytes(image_bytes):
    images = tf.map_fn(
        lambda contents: decode_image(contents, family, image_size),
        image_bytes, fn_output_signature=tf.TensorSpec(shape[1:], tf.float32))
    return serving_outputs(model, images)

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(SERVING_DEFAULT, serve_images, input_signature=[
      tf.TensorSpec(shape, tf.float32, name=IMAGES)])
  archive.add_endpoint(SERVING_BYTES, serve_bytes, input_signature=[
      tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)])
  with files.atomic_output(path, overwrite, is_dir=True) as tmp:
    archive.write_out(tmp, verbose=False)
  return path


def export_checkpoint(checkpoint_dir, export_dir, version=1, overwrite=False,
                      use_ema=None, exact=False):
  """Restores a checkpoint's model and exports it to `export_dir/<version>`.

  SACT models are exported with `execution="sparse"`, inference-optimised
  (`sact_tf.inference.optimize`: batch norms folded into the weights, the
  outputs equal up to float32 rounding) unless `exact`; the sampling
  family, which `optimize` does not fold, exactly. `export_dir` is
  created if needed (and removed again if the export fails).

  Args:
    checkpoint_dir: str, a run directory, one of its checkpoints, or an
      original release checkpoint (see `checkpoint_io.restore_model`).
    export_dir: str, the model's base directory for TF Serving.
    version: int >= 1. Defaults to 1.
    overwrite: bool, replace an existing version. Defaults to False.
    use_ema: bool or None, see `checkpoint_io.restore_model`.
    exact: bool. Export the model's own computation (the original's, batch
      norms unfolded) instead of the optimised one. Defaults to False.

  Returns:
    `(path, config)`: the version directory and the run configuration.

  Raises:
    ValueError: a bad version, an existing version (without `overwrite`,
      checked before the model is restored), or a missing or unreadable
      checkpoint. Nothing is left behind then.
  """
  path = version_path(export_dir, version)
  if os.path.exists(path) and not overwrite:
    versions = existing_versions(export_dir)
    raise ValueError(
        f"{path} already exists (versions {versions} are there); pass "
        f"--version={max(versions + [version]) + 1} or --overwrite")
  model, config = checkpoint_io.restore_model(checkpoint_dir, use_ema,
                                              execution="sparse")
  if not exact and model.model_type in inference.FOLDABLE_TYPES:
    model = inference.optimize(model)
  created = not os.path.isdir(export_dir)
  os.makedirs(export_dir, exist_ok=True)
  try:
    export_saved_model(model, path, config["family"], config["image_size"],
                       overwrite)
  except BaseException:
    if created:
      shutil.rmtree(export_dir, ignore_errors=True)
    raise
  return path, config
