"""The user's own photos as model inputs, as the original
`imagenet_ponder_map.py` fed them: the whole photo (no crop), optionally
resized so that its longer edge has `image_size` pixels, in the value range
of the model family's evaluation preprocessing.

Photos are read with Pillow: JPEG (RGB, grayscale, CMYK), PNG (RGB,
grayscale, 16-bit, palette, with alpha, which is dropped as `tf.io.
decode_image` drops it), and whatever else Pillow reads.
"""

import glob
import os

import numpy as np
from PIL import Image
import tensorflow as tf

from sact_tf.data import preprocessing
from sact_tf.utils import checks

# Without resizing, photos whose longer edge is larger are refused: a SACT
# ResNet-101 at 2048 x 2048 already needs several GB.
MAX_IMAGE_SIZE = 2048
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L")


def _to_rgb(image):
  if image.mode in _SIXTEEN_BIT_MODES:  # Pillow would clip to 255.
    values = np.asarray(image, np.float64) / 257.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(
        np.uint8)).convert("RGB")
  return image.convert("RGB")


def find_photos(pattern):
  """The files matching a glob pattern (`**`: any depth), sorted.

  Raises:
    ValueError: no file matches, or two files have the same base name (their
      pictures would overwrite each other).
  """
  paths = sorted(p for p in glob.glob(pattern, recursive=True)
                 if os.path.isfile(p))
  if not paths:
    raise ValueError(f"no file matches --images_pattern={pattern!r}")
  names = {}
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in names:
      raise ValueError(f"{names[name]} and {path} would both write "
                       f"{name}_*.png")
    names[name] = path
  return paths


def load_photo(path, image_size=0, max_image_size=MAX_IMAGE_SIZE):
  """Reads a photo as RGB, resized as `imagenet_ponder_map.py` resized it.

  Args:
    path: str, an image file.
    image_size: int. Resize (bicubic) so that the longer edge has this many
      pixels, keeping the aspect ratio; 0 keeps the photo's size. Defaults
      to 0.
    max_image_size: int. Without `image_size`, photos whose longer edge is
      larger are refused. Defaults to 2048.

  Returns:
    uint8 `[height, width, 3]`.

  Raises:
    ValueError: (one line, naming the file) not a readable image, too large,
      or a bad `image_size`.
  """
  checks.check_int("image_size", image_size, minimum=0)
  try:
    with Image.open(path) as image:
      width, height = image.size
      if not image_size and max(width, height) > max_image_size:
        raise ValueError(
            f"{path} is {width}x{height} pixels, larger than "
            f"{max_image_size} on its longer edge; resize it with "
            f"--image_size")
      if image_size:
        # JPEG: decode at the smallest scale (1/2, 1/4, 1/8) that is still
        # larger than the target, which keeps huge photos cheap.
        image.draft("RGB", (image_size, image_size))
      rgb = _to_rgb(image)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"cannot read {path} as an image: {reason}") from e
  if image_size:
    scale = image_size / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
  return np.asarray(rgb, np.uint8)


def model_input(photo, family):
  """A photo in the value range the model family was trained on.

  Args:
    photo: uint8 `[height, width, 3]`.
    family: str. `"imagenet"`: scaled to [-1, 1] (the original's
      `imagenet_ponder_map.preprocessing`); `"cifar"`: per-image
      standardization. No crop and no resize, unlike `preprocess_for_eval`.

  Returns:
    float32 `[1, height, width, 3]`.
  """
  if family not in preprocessing.FAMILIES:
    raise ValueError(f"family must be one of {preprocessing.FAMILIES}, "
                     f"received family={family!r}")
  image = tf.convert_to_tensor(photo, tf.uint8)
  if family == "imagenet":
    image = (tf.image.convert_image_dtype(image, tf.float32) - 0.5) * 2.0
  else:
    image = tf.image.per_image_standardization(tf.cast(image, tf.float32))
  return image[None]


def photo_end_points(model, photo, family):
  """The end points of a SACT model for one whole photo.

  Args:
    model: a SACT `CifarResNet` or `ImageNetResNet`.
    photo: uint8 `[height, width, 3]`, e.g. from `load_photo`.
    family: str, the model's family (see `model_input`).

  Returns:
    dict of tensors with batch 1, the model's end points (e.g.
    `ponder_cost_map` `[1, height, width, 1]`, `<block>/outputs`).
  """
  if model.model_type != "sact":
    raise ValueError(f"ponder cost maps need a SACT model, received "
                     f"model_type={model.model_type!r}")
  return model(model_input(photo, family), training=False)


def ponder_cost_map(model, photo, family):
  """The SACT ponder cost map of one photo at its resolution.

  Args:
    model: a SACT `CifarResNet` or `ImageNetResNet`.
    photo: uint8 `[height, width, 3]`, e.g. from `load_photo`.
    family: str, the model's family (see `model_input`).

  Returns:
    float32 `[height, width]`.
  """
  end_points = photo_end_points(model, photo, family)
  return end_points["ponder_cost_map"][0, :, :, 0].numpy()
