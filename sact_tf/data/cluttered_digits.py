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

The harder variant `cluttered_digits_64` (`VARIANTS`) draws the same digits
at 16 to 24 pixels (a random size per canvas) on 64x64 canvases with 24
fragments: the digit covers 6-14% of the canvas instead of 25%, and the
clutter is denser, so where the network computes matters more.
"""

import functools
from typing import NamedTuple

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


class Variant(NamedTuple):
  """A canvas size, the digit sizes drawn and the clutter fragments."""

  canvas_size: int
  digit_sizes: tuple
  num_fragments: int
  seed_offset: int


# Dataset name: its canvases. The default's digits are all 16x16.
VARIANTS = {
    "cluttered_digits": Variant(CANVAS_SIZE, (16,), NUM_FRAGMENTS, 0),
    "cluttered_digits_64": Variant(64, tuple(range(16, 25)), 24, 64),
}
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
def load(split, variant="cluttered_digits"):
  """One split, generated in memory (seconds at most; cached).

  Args:
    split: str, `"train"` or `"test"`.
    variant: str, a key of `VARIANTS`. Defaults to the 32x32 canvases.

  Returns:
    dict of numpy arrays: `image` uint8 `[N, S, S, 3]` (grey, repeated
    over the channels; `S` the variant's canvas size), `label` int64 `[N]`
    (0-9), `box` float32 `[N, 4]` (the digit's `ymin, xmin, ymax, xmax`,
    normalized to [0, 1]).
  """
  if split not in SPLITS:
    raise ValueError(f"cluttered_digits has the splits {SPLITS}, received "
                     f"split={split!r}")
  if variant not in VARIANTS:
    raise ValueError(f"unknown cluttered digits variant {variant!r}; known: "
                     f"{', '.join(VARIANTS)}")
  canvas_size, digit_sizes, num_fragments, seed_offset = VARIANTS[variant]
  digits, labels = split_digits(split)
  rng = np.random.default_rng(SEEDS[split] + seed_offset)
  order = np.tile(np.arange(len(digits)), COPIES[split])
  images = np.zeros((len(order), canvas_size, canvas_size), np.float32)
  add_clutter(images, digits, rng, num_fragments)
  # Digits at their own size draw no sizes from `rng`, so the default's
  # canvases stay those it has always had.
  if digit_sizes == (digits.shape[1],):
    sizes = np.full(len(order), digits.shape[1])
    y, x = paste(images, digits[order], rng)
  else:
    sizes = rng.choice(digit_sizes, size=len(order))
    y, x = _paste_resized(images, digits, order, sizes, rng)
  boxes = np.stack([y, x, y + sizes, x + sizes], 1).astype(
      np.float32) / canvas_size
  images = np.round(images * 255).astype(np.uint8)
  return {"image": np.repeat(images[..., None], 3, axis=-1),
          "label": labels[order], "box": boxes}


def _paste_resized(canvases, digits, order, sizes, rng):
  """Pastes `digits[order[n]]` resized to `sizes[n]` at a random place."""
  y = np.zeros(len(order), np.int64)
  x = np.zeros(len(order), np.int64)
  for size in np.unique(sizes):
    members = np.flatnonzero(sizes == size)
    scale = size / digits.shape[1]
    resized = np.clip(np.stack([ndimage.zoom(d, scale, order=1)
                                for d in digits]), 0.0, 1.0)
    group = canvases[members]
    y[members], x[members] = paste(group, resized[order[members]], rng)
    canvases[members] = group
  return y, x
