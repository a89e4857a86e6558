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

Both return the outputs of `serving_outputs`. Detectors
(`export_detector`) have the same two signatures: `images` float32 in
[-1, 1], `image_bytes` fitted into S x S (`box_ops.detection_input`), both
returning `detection_outputs` (boxes of `image_bytes` in the files'
pixels). The variables are tracked with
`keras.export.ExportArchive`, so the SavedModel loads in TF Serving,
`saved_model_cli run` and TF1 sessions as well as with `tf.saved_model.load`.
"""

import functools
import os
import re
import shutil

import keras
import tensorflow as tf

from sact_tf import inference
from sact_tf.data import boxes as box_ops
from sact_tf.data import preprocessing
from sact_tf.detection import detector as detector_lib
from sact_tf.training import checkpoint_io
from sact_tf.training import detection_run
from sact_tf.utils import checks
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
  }
  outputs.update(computation_outputs(model, end_points))
  return outputs


def computation_outputs(model, end_points):
  """`flops`, the per-block ponder costs (or sampling densities), the maps.

  Args:
    model: the `CifarResNet` or `ImageNetResNet` that gave `end_points`.
    end_points: dict, its outputs (or those of the detector's image
      encoder, `sact_tf.detection.detect`).

  Returns:
    dict: `flops` and, by `model.model_type`, `<block>_ponder_cost`,
    `ponder_cost_map`, `<block>_sampling_density`, `sampling_density_map`
    (see `serving_outputs`).
  """
  outputs = {"flops": end_points["flops"]}
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


def detection_outputs(detector, images):
  """The outputs of a detector's signatures for a batch of images.

  Args:
    detector: a `sact_tf.detection.build_detector` detector.
    images: float32 `[batch, H, W, 3]` in [-1, 1].

  Returns:
    dict of tensors (`sact_tf.detection.detect`, renamed as TF Serving
    users of detectors expect):
    * `boxes`: float32 `[batch, K, 4]`, `ymin, xmin, ymax, xmax` in pixels
      of `images`, rows of -1 after the detections.
    * `scores`: float32 `[batch, K]`, the detections' confidence.
    * `classes`: int32 `[batch, K]`, class ids (-1 padding).
    * `num_detections`: int32 `[batch]`.
    * `flops`: int64 `[batch]`, the backbone's FLOPs.
    * ACT and SACT: `<block>_ponder_cost`, float32 `[batch]`; SACT:
      `ponder_cost_map`, float32 `[batch, H, W, 1]` (as `serving_outputs`).
  """
  found = detector_lib.detect(detector, images)
  outputs = {"boxes": found["boxes"], "scores": found["confidence"],
             "classes": found["labels"],
             "num_detections": found["num_detections"]}
  outputs.update(computation_outputs(
      detector_lib.image_encoder(detector).resnet, found))
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


def decode_rgb(contents):
  """One encoded JPEG or PNG file (string scalar) as uint8 `[h, w, 3]`.

  Raises (in the graph) on another format or more than `MAX_IMAGE_PIXELS`
  pixels, read from the header before decoding.
  """
  shape = tf.cast(_encoded_image_shape(contents), tf.int64)
  small_enough = tf.debugging.assert_less_equal(
      shape[0] * shape[1], tf.constant(MAX_IMAGE_PIXELS, tf.int64),
      message=f"images may have at most {MAX_IMAGE_PIXELS} pixels")
  with tf.control_dependencies([small_enough]):
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8,
                              expand_animations=False)


def decode_image(contents, family, image_size):
  """One encoded JPEG or PNG file to the model's evaluation input.

  Args:
    contents: string scalar, the file's bytes.
    family: str, `"cifar"` or `"imagenet"` (see `preprocess_for_eval`).
    image_size: int, the model's input height and width.

  Returns:
    float32 `[image_size, image_size, 3]`.
  """
  return preprocessing.preprocess_for_eval(decode_rgb(contents), family,
                                           image_size)


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


def _write_archive(model, path, image_size, outputs_fn, bytes_fn, overwrite):
  """Writes the two signatures of `model` to `path`, all or nothing.

  `serving_default` runs `outputs_fn` on `images` checked to be float32
  `[batch, image_size, image_size, 3]`; `serving_bytes` runs `bytes_fn` on
  `image_bytes`.
  """
  files.check_writable_output(path, overwrite)
  shape = [None, image_size, image_size, 3]

  def serve_images(images):
    return outputs_fn(tf.ensure_shape(images, shape))

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(SERVING_DEFAULT, serve_images, input_signature=[
      tf.TensorSpec(shape, tf.float32, name=IMAGES)])
  archive.add_endpoint(SERVING_BYTES, bytes_fn, input_signature=[
      tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)])
  with files.atomic_output(path, overwrite, is_dir=True) as tmp:
    archive.write_out(tmp, verbose=False)
  return path


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
  checks.check_int("image_size", image_size)

  def serve_bytes(image_bytes):
    images = tf.map_fn(
        lambda contents: decode_image(contents, family, image_size),
        image_bytes, fn_output_signature=tf.TensorSpec(
            [image_size, image_size, 3], tf.float32))
    return serving_outputs(model, images)

  return _write_archive(model, path, image_size,
                        lambda images: serving_outputs(model, images),
                        serve_bytes, overwrite)


def export_detector(detector, path, image_size, overwrite=False):
  """Writes a detector as a SavedModel for TF Serving to `path`.

  Both signatures return `detection_outputs`. `serving_default` takes
  `images` float32 `[batch, S, S, 3]` in [-1, 1] (S = `image_size`; the
  evaluation's input, `box_ops.scale_images` of uint8 images) and returns
  boxes in their pixels. `serving_bytes` decodes each file, fits it into S x S
  (`box_ops.detection_input`: aspect ratio kept, zeros padded at the bottom
  and right) and returns the boxes in the file's pixels (scaled back,
  clipped to the file's image); its `ponder_cost_map` stays S x S.
  Nothing is left at `path` if the export fails.

  Args:
    detector: a built `sact_tf.detection.build_detector` detector.
    path: str, the version directory; its parent must exist.
    image_size: int, S.
    overwrite: bool, replace an existing `path`. Defaults to False.

  Returns:
    `path`.
  """
  checks.check_int("image_size", image_size)

  def serve_bytes(image_bytes):
    images = tf.map_fn(
        lambda contents: box_ops.detection_input(decode_rgb(contents),
                                                 image_size),
        image_bytes, fn_output_signature=tf.TensorSpec(
            [image_size, image_size, 3], tf.float32))
    shapes = tf.map_fn(_encoded_image_shape, image_bytes,
                       fn_output_signature=tf.TensorSpec([2], tf.int32))
    outputs = detection_outputs(detector, images)
    shapes = tf.cast(shapes, tf.float32)[:, None, :]
    fitted = tf.cast(box_ops.fitted_size(shapes, image_size), tf.float32)
    boxes = box_ops.scale_boxes(outputs["boxes"], shapes / fitted)
    limit = tf.concat([shapes, shapes], -1)
    outputs["boxes"] = tf.where(boxes < 0, boxes, tf.minimum(boxes, limit))
    return outputs

  return _write_archive(detector, path, image_size,
                        lambda images: detection_outputs(detector, images),
                        serve_bytes, overwrite)


def export_checkpoint(checkpoint_dir, export_dir, version=1, overwrite=False,
                      use_ema=None, exact=False):
  """Restores a checkpoint's model and exports it to `export_dir/<version>`.

  SACT models are exported with `execution="sparse"`, inference-optimised
  (`sact_tf.inference.optimize`: batch norms folded into the weights, the
  outputs equal up to float32 rounding) unless `exact`; the sampling
  family, which `optimize` does not fold, exactly. A run of
  `tools/train_detection.py` (its `config.json` has `backbone_kwargs`) is
  exported with `export_detector`, its backbone with sparse execution,
  inference-optimised (`detection.detector.optimize`) unless `exact`.
  `export_dir` is
  created if needed (and removed again if the export fails).

  Args:
    checkpoint_dir: str, a run directory, one of its checkpoints, or an
      original release checkpoint (see `checkpoint_io.restore_model`), or
      a detection run directory or checkpoint.
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
  if detection_run.is_detection_run(checkpoint_dir):
    if use_ema:
      raise ValueError(f"{checkpoint_dir} is a detection run, which keeps no "
                       f"moving averages of the weights; drop --use_ema")
    model, config = detection_run.restore(checkpoint_dir, execution="sparse")
    if not exact and config["backbone_kwargs"]["model_type"] in (
        inference.FOLDABLE_TYPES):
      model = detector_lib.optimize(model)
    write = functools.partial(export_detector, model, path,
                              config["image_size"], overwrite)
  else:
    model, config = checkpoint_io.restore_model(checkpoint_dir, use_ema,
                                                execution="sparse")
    if not exact and model.model_type in inference.FOLDABLE_TYPES:
      model = inference.optimize(model)
    write = functools.partial(export_saved_model, model, path,
                              config["family"], config["image_size"],
                              overwrite)
  created = not os.path.isdir(export_dir)
  os.makedirs(export_dir, exist_ok=True)
  try:
    write()
  except BaseException:
    if created:
      shutil.rmtree(export_dir, ignore_errors=True)
    raise
  return path, config
