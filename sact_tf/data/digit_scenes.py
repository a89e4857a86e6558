"""Digit scenes: the offline default detection dataset.

Canvases of `CANVAS_SIZE` x `CANVAS_SIZE` pixels, each with 1 to
`MAX_OBJECTS` of scikit-learn's handwritten digits (16x16, as in
`cluttered_digits`, whose digits, train / test split of the digits and
clutter this reuses) at random places that do not overlap, on clutter of
6x6 fragments of other digits. Every digit is an object: its box and its
class (0-9). No download; the splits are deterministic (fixed seeds), so
every run and every machine sees the same images.
"""

import functools

import numpy as np

from sact_tf.data import cluttered_digits

CANVAS_SIZE = 64
MAX_OBJECTS = 3
NUM_FRAGMENTS = 12
NUM_CLASSES = cluttered_digits.NUM_CLASSES
NUM_EXAMPLES = {"train": 6000, "test": 500}
SEEDS = {"train": 20261207, "test": 20261208}
SPLITS = tuple(NUM_EXAMPLES)
_MAX_TRIES = 100


def _places(rng, count, digit_size):
  """`count` top-left corners of digits that do not overlap, int `[count, 2]`."""
  places = []
  for _ in range(_MAX_TRIES):
    if len(places) == count:
      break
    y, x = rng.integers(0, CANVAS_SIZE - digit_size + 1, size=2)
    if all(abs(y - py) >= digit_size or abs(x - px) >= digit_size
           for py, px in places):
      places.append((y, x))
  return np.array(places, np.int64).reshape(-1, 2)


@functools.lru_cache(maxsize=None)
def load(split):
  """One split, generated in memory (cached).

  Args:
    split: str, `"train"` or `"test"`.

  Returns:
    dict of numpy arrays: `image` uint8 `[N, 64, 64, 3]` (grey, repeated
    over the channels); `boxes` float32 `[N, MAX_OBJECTS, 4]`, the digits'
    `ymin, xmin, ymax, xmax` in pixels; `labels` int32 `[N, MAX_OBJECTS]`
    (0-9); both padded with -1 after the canvas's digits.
  """
  if split not in SPLITS:
    raise ValueError(f"digit_scenes has the splits {SPLITS}, received "
                     f"split={split!r}")
  digits, classes = cluttered_digits.split_digits(split)
  rng = np.random.default_rng(SEEDS[split])
  num, size = NUM_EXAMPLES[split], digits.shape[1]
  images = np.zeros((num, CANVAS_SIZE, CANVAS_SIZE), np.float32)
  cluttered_digits.add_clutter(images, digits, rng, NUM_FRAGMENTS)
  boxes = np.full((num, MAX_OBJECTS, 4), -1, np.float32)
  labels = np.full((num, MAX_OBJECTS), -1, np.int32)
  counts = rng.integers(1, MAX_OBJECTS + 1, size=num)
  for n in range(num):
    places = _places(rng, counts[n], size)
    chosen = rng.integers(len(digits), size=len(places))
    for k, ((y, x), d) in enumerate(zip(places, chosen)):
      cluttered_digits.paste(images[n:n + 1], digits[d][None], rng,
                             np.array([y]), np.array([x]))
      boxes[n, k] = (y, x, y + size, x + size)
      labels[n, k] = classes[d]
  images = np.round(images * 255).astype(np.uint8)
  return {"image": np.repeat(images[..., None], 3, axis=-1),
          "boxes": boxes, "labels": labels}
