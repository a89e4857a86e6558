"""Image preprocessing of the original release, one image at a time.

CIFAR (`cifar_data_provider.py`): training pads to `size + 4`, crops a
random `size x size` window and flips left-right at random; evaluation
crops or pads to `size`; both end with `per_image_standardization`.

ImageNet (`external/inception_preprocessing.py`, `fast_mode=False`):
training crops a random window that covers at least 10% of one of the
object boxes (`sample_distorted_bounding_box`, aspect ratio 0.75-1.33,
area 5-100%, 100 attempts, the whole image when there is no box), resizes it
with one of the four resize methods chosen at random, flips it and
distorts its colours in one of four random orders; evaluation crops the
central 87.5% (of the height and of the width), resizes bilinearly; both
scale to [-1, 1].

These are `tf.image` ops, as in the original: `official.vision.ops`
has square centre crops, box-less random crops and uint8 colour jitter
without hue, which would change the models' inputs.

All functions take one decoded image `[height, width, 3]` (uint8, or
float32: CIFAR's in [0, 255], ImageNet's in [0, 1]) and work inside
`tf.data`, a `tf.function` or a SavedModel signature.
"""

import tensorflow as tf

FAMILIES = ("cifar", "imagenet")
CIFAR_PADDING = 4
CENTRAL_FRACTION = 0.875
_NUM_RESIZE_METHODS = 4
_NUM_COLOR_ORDERINGS = 4
_BRIGHTNESS_DELTA = 32.0 / 255.0
_SATURATION_RANGE = (0.5, 1.5)
_CONTRAST_RANGE = (0.5, 1.5)
_HUE_DELTA = 0.2


def _check(family, image_size):
  if family not in FAMILIES:
    raise ValueError(f"family must be one of {FAMILIES}, received "
                     f"family={family!r}")
  if not isinstance(image_size, int) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, received "
                     f"image_size={image_size!r}")


def _to_rgb(image):
  """Grayscale `[h, w, 1]` images become RGB; the rank must be 3."""
  image = tf.convert_to_tensor(image)
  if image.shape.rank != 3:
    raise ValueError(f"expected one image [height, width, channels], "
                     f"received shape {image.shape}")
  if image.shape[-1] == 1:
    image = tf.image.grayscale_to_rgb(image)
  return image


def _scale_to_unit(image):
  return (image - 0.5) * 2.0


def _resize(image, image_size, method=0):
  """TF1's `resize_images` (no half-pixel centres) of one float image.

  `method`: 0 bilinear, 1 nearest neighbour, 2 bicubic, 3 area.
  """
  images = image[None]
  size = [image_size, image_size]
  if method == 3:
    return tf.raw_ops.ResizeArea(images=images, size=size,
                                 align_corners=False)[0]
  op = (tf.raw_ops.ResizeBilinear, tf.raw_ops.ResizeNearestNeighbor,
        tf.raw_ops.ResizeBicubic)[method]
  return op(images=images, size=size, align_corners=False,
            half_pixel_centers=False)[0]


def _distort_color(image, ordering):
  """The original's `distort_color(fast_mode=False)`, in [0, 1]."""

  def brightness(x):
    return tf.image.random_brightness(x, _BRIGHTNESS_DELTA)

  def saturation(x):
    return tf.image.random_saturation(x, *_SATURATION_RANGE)

  def hue(x):
    return tf.image.random_hue(x, _HUE_DELTA)

  def contrast(x):
    return tf.image.random_contrast(x, *_CONTRAST_RANGE)

  orderings = [(brightness, saturation, hue, contrast),
               (saturation, brightness, contrast, hue),
               (contrast, hue, brightness, saturation),
               (hue, saturation, contrast, brightness)]

  def apply(ops):
    def fn():
      x = image
      for op in ops:
        x = op(x)
      return tf.clip_by_value(x, 0.0, 1.0)
    return fn

  return tf.switch_case(ordering, [apply(ops) for ops in orderings])


def cifar_train(image, image_size, flip=True):
  """Pad-crop(-flip) and per-image standardization: float32 `[s, s, 3]`."""
  image = tf.cast(_to_rgb(image), tf.float32)
  padded = image_size + CIFAR_PADDING
  image = tf.image.resize_with_crop_or_pad(image, padded, padded)
  image = tf.image.random_crop(image, [image_size, image_size, 3])
  if flip:
    image = tf.image.random_flip_left_right(image)
  return tf.image.per_image_standardization(image)


def cifar_eval(image, image_size):
  """Crop or pad to `image_size`, per-image standardization."""
  image = tf.cast(_to_rgb(image), tf.float32)
  image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
  return tf.image.per_image_standardization(image)


def inception_train(image, image_size, boxes=None):
  """Inception training distortions: float32 `[s, s, 3]` in [-1, 1].

  Args:
    image: `[h, w, 3]` uint8 (or float32 in [0, 1]).
    image_size: int, output height and width.
    boxes: float32 `[num_boxes, 4]` object boxes `(ymin, xmin, ymax, xmax)`
      in [0, 1], or None / no boxes for the whole image.
  """
  image = tf.image.convert_image_dtype(_to_rgb(image), tf.float32)
  if boxes is None:
    boxes = tf.zeros([0, 4], tf.float32)
  begin, size, _ = tf.image.sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.reshape(boxes, [1, -1, 4]),
      min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33),
      area_range=(0.05, 1.0), max_attempts=100,
      use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, size)
  method = tf.random.uniform([], maxval=_NUM_RESIZE_METHODS, dtype=tf.int32)
  image = tf.switch_case(method, [
      lambda m=m: _resize(image, image_size, m)
      for m in range(_NUM_RESIZE_METHODS)])
  image = tf.image.random_flip_left_right(image)
  image = _distort_color(image, tf.random.uniform(
      [], maxval=_NUM_COLOR_ORDERINGS, dtype=tf.int32))
  return _scale_to_unit(image)


def inception_eval(image, image_size, central_fraction=CENTRAL_FRACTION):
  """Central crop, bilinear resize, scale: float32 `[s, s, 3]` in [-1, 1]."""
  image = tf.image.convert_image_dtype(_to_rgb(image), tf.float32)
  image = tf.image.central_crop(image, central_fraction)
  return _scale_to_unit(_resize(image, image_size))


def preprocess_for_eval(image, family, image_size):
  """The evaluation preprocessing of a model family.

  Args:
    image: one decoded image, `[height, width, 3]` (or `[h, w, 1]`
      grayscale) uint8.
    family: str, `"cifar"` (crop/pad + per-image standardization) or
      `"imagenet"` (inception: central crop 0.875, bilinear resize, [-1, 1]).
    image_size: int, output height and width.

  Returns:
    float32 `[image_size, image_size, 3]`.
  """
  _check(family, image_size)
  if family == "cifar":
    return cifar_eval(image, image_size)
  return inception_eval(image, image_size)


def preprocess_for_train(image, family, image_size, boxes=None, flip=True):
  """The training preprocessing of a model family (random).

  Args:
    image: one decoded image `[height, width, 3]` uint8.
    family: str, `"cifar"` or `"imagenet"`.
    image_size: int, output height and width.
    boxes: float32 `[num_boxes, 4]` normalized object boxes, ImageNet only.
    flip: bool. CIFAR's random left-right flip (off for digits, whose
      mirror images are other shapes). Defaults to True.

  Returns:
    float32 `[image_size, image_size, 3]`.
  """
  _check(family, image_size)
  if family == "cifar":
    return cifar_train(image, image_size, flip)
  return inception_train(image, image_size, boxes)
