"""COCO 2017 detection data: COCO's own JSON and images, or tensorflow-datasets.

Two sources of the same examples:

* COCO's annotation file (`instances_val2017.json`, read with pycocotools)
  and its image folder (`val2017/`): `read_annotations`, then `dataset`.
* tensorflow-datasets' `coco/2017`, prepared in a local data directory
  (nothing is downloaded): `tfds_dataset`.

Both give the digit scenes' form: `yxyx` boxes in pixels, class ids
0..79 (COCO's 80 category ids, which run from 1 to 90 with gaps, in
increasing order, as tensorflow-datasets numbers them), padded with -1 to
`MAX_OBJECTS` per image. Crowd annotations (`iscrowd: 1`, a region of many
objects) are dropped: RetinaNet's training ignores them, and pycocotools'
evaluation counts a detection on them neither as right nor as wrong, so
without them a detection there is a false positive (AP a little below
COCO's own). Images without any other annotation (about 1% of COCO) are
skipped, with a count printed.
"""

import contextlib
import io
import json
import os

import numpy as np
from pycocotools import coco as coco_api
import tensorflow as tf
import tensorflow_datasets as tfds

from sact_tf.data import boxes as box_ops

NUM_CLASSES = 80
# More than the most objects of one COCO 2017 image (93, not crowds).
MAX_OBJECTS = 100
DEFAULT_IMAGE_SIZE = 512
TFDS_NAME = "coco/2017"
# Our splits -> tensorflow-datasets' (COCO's test images have no boxes).
TFDS_SPLITS = {"train": "train", "test": "validation"}
# Boxes may pass the image's border by this much (pixels; COCO's own
# polygons' boxes do, by rounding), and are clipped to it.
BORDER_TOLERANCE = 1.0
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_json(path):
  """pycocotools' COCO index of `path`; one-line ValueError when unreadable."""
  if not os.path.isfile(path):
    raise ValueError(f"COCO annotation file {path!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path} is not a COCO annotation file (JSON): "
                     f"{' '.join(str(e).split())}") from e
  if not isinstance(data, dict) or not data.get("images") or not data.get(
      "annotations"):
    raise ValueError(f"{path} holds no images or no annotations: an empty "
                     f"COCO annotation file")
  index = coco_api.COCO()
  index.dataset = data
  with contextlib.redirect_stdout(io.StringIO()):
    index.createIndex()
  return index


def _check_image_file(path, image_id):
  if not os.path.isfile(path):
    raise ValueError(f"image file {path} (image id {image_id}) does not "
                     f"exist")
  with open(path, "rb") as f:
    head = f.read(len(_PNG_MAGIC))
  if not (head.startswith(_JPEG_MAGIC) or head == _PNG_MAGIC):
    raise ValueError(f"{path} (image id {image_id}) is not a JPEG or PNG "
                     f"image")


def read_annotations(annotation_file, images_dir, log=print):
  """The images and boxes of a COCO annotation file, checked.

  Args:
    annotation_file: str, COCO's JSON (`instances_*2017.json`).
    images_dir: str, the folder of its images (`file_name`s).
    log: callable taking a str: the counts of what was skipped.

  Returns:
    dict of numpy arrays over the images kept (those with at least one
    annotation that is not a crowd), in increasing image id: `files` (str
    paths), `image_ids` int64 `[N]`, `sizes` int32 `[N, 2]` (height,
    width), `boxes` float32 `[N, MAX_OBJECTS, 4]` (`yxyx` pixels),
    `labels` int32 `[N, MAX_OBJECTS]` (0..79), padded with -1; and
    `category_ids` int `[80]` (class k is COCO category `category_ids[k]`).

  Raises:
    ValueError: one line naming the file and what is wrong: unreadable or
      empty, not 80 categories, a category id not among them, a box outside
      its image (beyond `BORDER_TOLERANCE`), a missing image file or one
      that is not a JPEG or PNG file.
  """
  index = _load_json(annotation_file)
  category_ids = sorted(index.cats)
  if len(category_ids) != NUM_CLASSES:
    raise ValueError(f"{annotation_file} has {len(category_ids)} categories; "
                     f"COCO 2017 detection has {NUM_CLASSES}")
  classes = {c: k for k, c in enumerate(category_ids)}
  kept, crowds, degenerate = [], 0, 0
  for image_id in sorted(index.imgs):
    info = index.imgs[image_id]
    height, width = info["height"], info["width"]
    boxes, labels = [], []
    for ann in index.imgToAnns.get(image_id, []):
      if ann["category_id"] not in classes:
        raise ValueError(
            f"{annotation_file}: annotation {ann['id']} of image {image_id} "
            f"has category_id {ann['category_id']}, not one of the file's "
            f"{NUM_CLASSES} categories")
      if ann.get("iscrowd"):
        crowds += 1
        continue
      x, y, w, h = (float(v) for v in ann["bbox"])
      if w <= 0 or h <= 0:
        degenerate += 1
        continue
      if (x < -BORDER_TOLERANCE or y < -BORDER_TOLERANCE or
          x + w > width + BORDER_TOLERANCE or
          y + h > height + BORDER_TOLERANCE):
        raise ValueError(
            f"{annotation_file}: box [x, y, w, h] = {ann['bbox']} of "
            f"annotation {ann['id']} is outside its {height}x{width} image "
            f"{image_id}")
      boxes.append([max(y, 0.0), max(x, 0.0), min(y + h, height),
                    min(x + w, width)])
      labels.append(classes[ann["category_id"]])
    if boxes:
      kept.append((image_id, info["file_name"], (height, width), boxes,
                   labels))
  skipped = len(index.imgs) - len(kept)
  log(f"COCO {os.path.basename(annotation_file)}: {len(kept)} images; "
      f"skipped {skipped} without annotations; ignored {crowds} crowd and "
      f"{degenerate} empty boxes")
  if not kept:
    raise ValueError(f"{annotation_file}: no image has an annotation that "
                     f"is not a crowd")
  count = len(kept)
  data = {"files": np.array([os.path.join(images_dir, k[1]) for k in kept]),
          "image_ids": np.array([k[0] for k in kept], np.int64),
          "sizes": np.array([k[2] for k in kept], np.int32),
          "boxes": np.full((count, MAX_OBJECTS, 4), -1, np.float32),
          "labels": np.full((count, MAX_OBJECTS), -1, np.int32),
          "category_ids": np.array(category_ids)}
  for n, (image_id, _, _, boxes, labels) in enumerate(kept):
    if len(boxes) > MAX_OBJECTS:
      raise ValueError(f"{annotation_file}: image {image_id} has "
                       f"{len(boxes)} boxes, more than {MAX_OBJECTS}")
    data["boxes"][n, :len(boxes)] = boxes
    data["labels"][n, :len(labels)] = labels
  for path, image_id in zip(data["files"], data["image_ids"]):
    _check_image_file(path, image_id)
  return data


def _fitted(image, boxes, labels, image_size):
  """`(image uint8 [S, S, 3], boxes, labels, size int32 [2])`."""
  size = tf.shape(image)[:2]
  image, boxes = box_ops.resize_with_pad(image, boxes, image_size)
  return image, boxes, labels, size


def dataset(data, image_size, train_seed=None):
  """The examples of `read_annotations` as a `tf.data.Dataset`.

  Args:
    data: what `read_annotations` returned.
    image_size: int, S: images are fitted into S x S
      (`box_ops.resize_with_pad`), their boxes with them.
    train_seed: int or None. Given: the images are shuffled (before they
      are read) with this seed, and repeated.

  Returns:
    Dataset of `(image uint8 [S, S, 3], boxes float32 [MAX_OBJECTS, 4],
    labels int32 [MAX_OBJECTS], size int32 [2])`, in the image ids' order
    unless shuffled; `size` is the file's (height, width), the boxes scale
    back to its pixels by `size / box_ops.fitted_size(size, S)`. An image
    whose decoded size is not its annotation's stops the pipeline with an
    error naming the file.
  """

  def example(path, size, boxes, labels):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                               expand_animations=False)
    same = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], size)),
        ["the image's size differs from its annotation's:", path])
    with tf.control_dependencies([same]):
      image = tf.identity(image)
    return _fitted(image, boxes, labels, image_size)

  slices = tf.data.Dataset.from_tensor_slices(
      (data["files"], data["sizes"], data["boxes"], data["labels"]))
  if train_seed is not None:
    slices = slices.shuffle(len(data["files"]), seed=train_seed).repeat()
  return slices.map(example, num_parallel_calls=tf.data.AUTOTUNE)


def check_tfds(tfds_data_dir):
  """Raises unless `coco/2017` is prepared in `tfds_data_dir` (no download)."""
  builder = tfds.builder(TFDS_NAME, data_dir=tfds_data_dir)
  if not builder.is_prepared():
    raise ValueError(
        f"{TFDS_NAME} is not prepared in {builder.data_dir!r}; prepare it "
        f"there (tfds build coco/2017 --data_dir=DIR, 25 GB download) and "
        f"pass --tfds_data_dir=DIR, or pass --coco_annotations and "
        f"--coco_images")
  return builder


def from_tfds_example(example, image_size):
  """One `coco/2017` example of tensorflow-datasets as `dataset` gives it.

  Args:
    example: dict with `image` uint8 `[h, w, 3]` and `objects`: `bbox`
      float32 `[n, 4]` (`yxyx` in [0, 1]), `label` int64 `[n]` (0..79),
      `is_crowd` bool `[n]`.
    image_size: int, S.

  Returns:
    `(image, boxes, labels, size)` as `dataset`'s, crowds dropped.
  """
  image = example["image"]
  objects = example["objects"]
  keep = tf.logical_not(objects["is_crowd"])
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  boxes = tf.boolean_mask(objects["bbox"], keep) * tf.concat([shape, shape],
                                                               0)
  labels = tf.cast(tf.boolean_mask(objects["label"], keep), tf.int32)
  pad = MAX_OBJECTS - tf.shape(labels)[0]
  boxes = tf.pad(boxes, [[0, pad], [0, 0]], constant_values=-1.0)
  labels = tf.pad(labels, [[0, pad]], constant_values=-1)
  boxes.set_shape([MAX_OBJECTS, 4])
  labels.set_shape([MAX_OBJECTS])
  return _fitted(image, boxes, labels, image_size)


def has_objects(example):
  """Whether a tensorflow-datasets example has an object that is no crowd."""
  return tf.reduce_any(tf.logical_not(example["objects"]["is_crowd"]))


# Examples shuffled in training from tensorflow-datasets' (shuffled) files.
TFDS_SHUFFLE_BUFFER = 1000


def tfds_dataset(split, image_size, tfds_data_dir, train_seed=None,
                 log=print):
  """`coco/2017` from a prepared tensorflow-datasets directory.

  Args:
    split: str, `"train"` or `"test"` (COCO's validation images).
    image_size: int, S.
    tfds_data_dir: str or None, tensorflow-datasets' data directory.
    train_seed: int or None. Given: shuffled with this seed, and repeated.
    log: callable taking a str: the count of images skipped.

  Returns:
    Dataset as `dataset`'s, without the images that have no object but
    crowds (counted by a pass over the split's annotations, images not
    decoded).
  """
  builder = check_tfds(tfds_data_dir)
  name = TFDS_SPLITS[split]
  annotations = builder.as_dataset(
      split=name, decoders={"image": tfds.decode.SkipDecoding()})
  total, empty = annotations.reduce(
      (np.int64(0), np.int64(0)), lambda counts, e: (
          counts[0] + 1,
          counts[1] + tf.cast(tf.logical_not(has_objects(e)), tf.int64)))
  log(f"{TFDS_NAME} {name}: skipped {int(empty)} of {int(total)} images "
      f"without annotations (crowd boxes ignored)")
  training = train_seed is not None
  examples = builder.as_dataset(
      split=name, shuffle_files=training,
      read_config=tfds.ReadConfig(shuffle_seed=train_seed)).filter(
          has_objects)
  if training:
    examples = examples.shuffle(TFDS_SHUFFLE_BUFFER, seed=train_seed).repeat()
  return examples.map(lambda e: from_tfds_example(e, image_size),
                      num_parallel_calls=tf.data.AUTOTUNE)
