"""Cluttered digits: the offline default dataset.

The 1,797 handwritten digits bundled with scikit-learn (8x8, 16 grey
levels; no download) are scaled up twice to 16x16 and placed at a random
position on a 32x32 canvas cluttered with 6x6 fragments of other digits, as
in the cluttered MNIST of the spatial transformer networks paper. The class
is the whole digit; the clutter looks locally like digit strokes, so a
classifier has to find the digit, which is where spatially adaptive
computation should spend its units. Each example also has the digit's box,
so evaluation can measure the ponder cost on the object and on the
background.

Splits are deterministic: of each class, every fifth digit is a test digit
(364 in all), the others (1,433) train digits; each train digit is drawn on
10 canvases (14,330 examples) and each test digit on 2 (728), with fixed
seeds, so every run and every machine sees the same images.
"""

import functools

import numpy as np
from scipy import ndimage
from sklearn import datasets as sk_datasets

CANVAS_SIZE = 32
DIGIT_SCALE = 2
NUM_FRAGMENTS = 4
FRAGMENT_SIZE = 6
NUM_CLASSES = 10
TEST_EVERY = 5
COPIES = {"train": 10, "test": 2}
SEEDS = {"train": 20170101, "test": 20170102}
SPLITS = tuple(COPIES)
# Of scikit-learn's 1,797 digits, 364 are test digits and 1,433 train digits.
NUM_EXAMPLES = {"train": 1433 * COPIES["train"], "test": 364 * COPIES["test"]}


def split_digits(split):
  """The 16x16 digits of a split: float32 `[N, 16, 16]` in [0, 1], int64 `[N]`."""
  digits = sk_datasets.load_digits()
  images = digits.images.astype(np.float32) / digits.images.max()
  rank_in_class = np.zeros(len(images), np.int64)
  for label in range(NUM_CLASSES):
    members = digits.target == label
    rank_in_class[members] = np.arange(members.sum())
  is_test = rank_in_class % TEST_EVERY == 0
  keep = is_test if split == "test" else ~is_test
  scaled = np.stack([ndimage.zoom(image, DIGIT_SCALE, order=1)
                     for image in images[keep]])
  return np.clip(scaled, 0.0, 1.0), digits.target[keep].astype(np.int64)


def _window(images, y, x, size):
  """`images[n, y[n]:y[n] + size, x[n]:x[n] + size]` for every n (indices)."""
  rows = (y[:, None] + np.arange(size))[:, :, None]
  cols = (x[:, None] + np.arange(size))[:, None, :]
  return np.arange(len(images))[:, None, None], rows, cols


def paste(canvases, patches, rng, y=None, x=None):
  """Pastes `patches[n]` on `canvases[n]` (maximum), in place.

  Args:
    canvases: float32 `[N, S, S]`.
    patches: float32 `[N, s, s]`.
    rng: `np.random.Generator`, draws the places when `y`, `x` are None.
    y, x: int `[N]` or None. The top-left corners.

  Returns:
    `(y, x)`, int `[N]`.
  """
  size = patches.shape[1]
  if y is None:
    y, x = rng.integers(0, canvases.shape[1] - size + 1,
                        size=(2, len(canvases)))
  index = _window(canvases, y, x, size)
  canvases[index] = np.maximum(canvases[index], patches)
  return y, x


def add_clutter(canvases, digits, rng, num_fragments=NUM_FRAGMENTS):
  """Pastes `num_fragments` random 6x6 windows of random digits per canvas.

  Args:
    canvases: float32 `[N, S, S]`, changed in place.
    digits: float32 `[M, s, s]`, the digits the fragments are cut from.
    rng: `np.random.Generator`.
    num_fragments: int. Defaults to 4.
  """
  size = digits.shape[1]
  for _ in range(num_fragments):
    # A random 6x6 window of a random digit.
    y, x = rng.integers(0, size - FRAGMENT_SIZE + 1, size=(2, len(canvases)))
    sources = digits[rng.integers(len(digits), size=len(canvases))]
    paste(canvases, sources[_window(sources, y, x, FRAGMENT_SIZE)], rng)


@functools.lru_cache(maxsize=None)
def load(split):
  """One split, generated in memory (a fraction of a second; cached).

  Args:
    split: str, `"train"` or `"test"`.

  Returns:
    dict of numpy arrays: `image` uint8 `[N, 32, 32, 3]` (grey, repeated
    over the channels), `label` int64 `[N]` (0-9), `box` float32 `[N, 4]`
    (the digit's `ymin, xmin, ymax, xmax`, normalized to [0, 1]).
  """
  if split not in SPLITS:
    raise ValueError(f"cluttered_digits has the splits {SPLITS}, received "
                     f"split={split!r}")
  digits, labels = split_digits(split)
  rng = np.random.default_rng(SEEDS[split])
  size = digits.shape[1]
  order = np.tile(np.arange(len(digits)), COPIES[split])
  images = np.zeros((len(order), CANVAS_SIZE, CANVAS_SIZE), np.float32)
  add_clutter(images, digits, rng)
  y, x = paste(images, digits[order], rng)
  boxes = np.stack([y, x, y + size, x + size], 1).astype(
      np.float32) / CANVAS_SIZE
  images = np.round(images * 255).astype(np.uint8)
  return {"image": np.repeat(images[..., None], 3, axis=-1),
          "label": labels[order], "box": boxes}
