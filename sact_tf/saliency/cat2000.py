"""CAT2000's directory layout: reading it, and writing data in it.

CAT2000 (Borji and Itti, 2015; 2,000 images of 20 categories, 1920 x 1080)
keeps, for the image `NNN` of category `C`:

  Stimuli/C/NNN.jpg         the image
  FIXATIONMAPS/C/NNN.jpg    the fixation density (fixations blurred), grey
  FIXATIONLOCS/C/NNN.mat    `fixLocs`: the binary map of fixated pixels

Other folders (e.g. `Stimuli/C/Output`) are ignored. Images and maps may
also be PNG (`write_stimulus` writes PNG, which keeps the offline digits
lossless). `write_cluttered_digits` writes the offline default data in this
layout, with fixations drawn inside each digit's box.
"""

import dataclasses
import glob
import os

import numpy as np
from PIL import Image
from scipy import io as scipy_io
from scipy import ndimage

from sact_tf.utils import checks

STIMULI = "Stimuli"
FIXATION_MAPS = "FIXATIONMAPS"
FIXATION_LOCATIONS = "FIXATIONLOCS"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
FIXATION_KEY = "fixLocs"


@dataclasses.dataclass(frozen=True)
class Stimulus:
  """One image of a CAT2000-layout directory and its ground-truth files.

  Attributes:
    category: str, the category folder's name.
    name: str, the image's base name without extension (`"001"`).
    image_path: str.
    fixation_map_path: str, the fixation density image.
    fixation_locations_path: str, the `.mat` file with `fixLocs`.
  """

  category: str
  name: str
  image_path: str
  fixation_map_path: str
  fixation_locations_path: str


def _find_image(directory, name):
  for extension in IMAGE_EXTENSIONS:
    path = os.path.join(directory, name + extension)
    if os.path.isfile(path):
      return path
  return None


def find_stimuli(directory):
  """Every stimulus of a CAT2000-layout directory, sorted by category, name.

  Args:
    directory: str.

  Returns:
    list of `Stimulus`.

  Raises:
    ValueError: (one line, naming the file) no `Stimuli/<category>/` image;
      an image without its fixation map or fixation locations.
  """
  stimuli_dir = os.path.join(directory, STIMULI)
  paths = sorted(p for p in glob.glob(os.path.join(stimuli_dir, "*", "*"))
                 if os.path.isfile(p)
                 and os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS)
  if not paths:
    raise ValueError(f"{stimuli_dir} has no <category>/<name>.jpg images "
                     f"(CAT2000's layout)")
  stimuli = []
  for path in paths:
    category = os.path.basename(os.path.dirname(path))
    name = os.path.splitext(os.path.basename(path))[0]
    fixation_map = _find_image(
        os.path.join(directory, FIXATION_MAPS, category), name)
    if fixation_map is None:
      raise ValueError(f"{path} has no fixation map {FIXATION_MAPS}/"
                       f"{category}/{name}.jpg")
    locations = os.path.join(directory, FIXATION_LOCATIONS, category,
                             name + ".mat")
    if not os.path.isfile(locations):
      raise ValueError(f"{path} has no fixation locations {locations}")
    stimuli.append(Stimulus(category, name, path, fixation_map, locations))
  return stimuli


def read_fixation_locations(path):
  """The binary fixation map `fixLocs` of a CAT2000 `.mat` file.

  Returns:
    bool `[H, W]`, True at fixated pixels.

  Raises:
    ValueError: (one line, naming the file) unreadable, no 2-D numeric
      `fixLocs`, or no fixation.
  """
  try:
    contents = scipy_io.loadmat(path, variable_names=[FIXATION_KEY])
  except (OSError, ValueError, TypeError, NotImplementedError,
          scipy_io.matlab.MatReadError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"cannot read {path} as a .mat file: {reason}") from e
  if FIXATION_KEY not in contents:
    raise ValueError(f"{path} has no {FIXATION_KEY}")
  locations = np.asarray(contents[FIXATION_KEY])
  if locations.ndim != 2 or not (np.issubdtype(locations.dtype, np.number)
                                 or locations.dtype == bool):
    raise ValueError(f"{path}: {FIXATION_KEY} must be a 2-D numeric map, "
                     f"received {locations.dtype} of shape "
                     f"{locations.shape}")
  fixated = locations > 0
  if not fixated.any():
    raise ValueError(f"{path} has no fixations ({FIXATION_KEY} is all zero)")
  return fixated


def read_fixation_map(path, shape=None):
  """A fixation density image as grey values in [0, 1].

  Args:
    path: str, an image (colour images are converted to grey).
    shape: `(H, W)` or None, the size it must have (its fixation
      locations').

  Returns:
    float64 `[H, W]`.

  Raises:
    ValueError: (one line, naming the file) unreadable, of another size
      than `shape`, or constant (CC and similarity need variance).
  """
  try:
    with Image.open(path) as image:
      grey = np.asarray(image.convert("L"), np.float64) / 255.0
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"cannot read {path} as an image: {reason}") from e
  if shape is not None and grey.shape != tuple(shape):
    raise ValueError(f"{path} is {grey.shape[1]}x{grey.shape[0]} pixels, its "
                     f"fixation locations {shape[1]}x{shape[0]}")
  if grey.max() == grey.min():
    raise ValueError(f"{path} is constant ({grey.flat[0]:.3f}); a fixation "
                     f"density needs fixations")
  return grey


def write_stimulus(directory, category, name, image, fixations, density):
  """Writes one stimulus in CAT2000's layout (image and density as PNG).

  Args:
    directory: str, the layout's root (created if needed).
    category: str.
    name: str, e.g. `"001"`.
    image: uint8 `[H, W, 3]`.
    fixations: bool `[H, W]`, saved as `fixLocs` (uint8).
    density: float `[H, W]` in [0, 1], saved as 8-bit grey.
  """
  for folder in (STIMULI, FIXATION_MAPS, FIXATION_LOCATIONS):
    os.makedirs(os.path.join(directory, folder, category), exist_ok=True)
  Image.fromarray(np.asarray(image, np.uint8)).save(
      os.path.join(directory, STIMULI, category, name + ".png"))
  Image.fromarray(np.round(np.clip(density, 0, 1) * 255).astype(
      np.uint8)).save(os.path.join(directory, FIXATION_MAPS, category,
                                   name + ".png"))
  scipy_io.savemat(
      os.path.join(directory, FIXATION_LOCATIONS, category, name + ".mat"),
      {FIXATION_KEY: np.asarray(fixations, np.uint8)})


def box_fixations(shape, box, num_fixations, rng):
  """Fixations drawn uniformly inside a box: a binary map.

  Args:
    shape: `(H, W)`.
    box: `(ymin, xmin, ymax, xmax)`, normalised to [0, 1].
    num_fixations: int, draws (repeats merge).
    rng: `numpy.random.Generator`.

  Returns:
    bool `[H, W]`.
  """
  height, width = shape
  top, left = int(box[0] * height), int(box[1] * width)
  bottom = max(top + 1, int(round(box[2] * height)))
  right = max(left + 1, int(round(box[3] * width)))
  fixations = np.zeros(shape, bool)
  fixations[rng.integers(top, bottom, num_fixations),
            rng.integers(left, right, num_fixations)] = True
  return fixations


def fixation_density(fixations, sigma):
  """Fixations blurred with a Gaussian, scaled to a maximum of 1.

  Args:
    fixations: bool `[H, W]`, not all False.
    sigma: float > 0, the width as a fraction of the longer side.

  Returns:
    float64 `[H, W]`.
  """
  density = ndimage.gaussian_filter(
      np.asarray(fixations, np.float64), sigma * max(np.shape(fixations)),
      mode="constant")
  return density / density.max()


def write_cluttered_digits(directory, num_images, num_fixations=16,
                           sigma=0.03, seed=0):
  """The offline default data's test canvases in CAT2000's layout.

  Each canvas gets `num_fixations` fixations drawn uniformly inside its
  digit's box (a stand-in for people looking at the object), their
  density blurred by `fixation_density`; the category is the digit's class
  (`digit_3`), the names its index in the test split (`0001`).

  Args:
    directory: str, created if needed.
    num_images: int in [1, 728], the first test canvases.
    num_fixations: int >= 2. Defaults to 16.
    sigma: float > 0, the density's blur. Defaults to 0.03.
    seed: int, seed of the fixations. Defaults to 0.

  Returns:
    The number of stimuli written.
  """
  # Imported here: the digits need scikit-learn, the reader does not.
  # pylint: disable=g-import-not-at-top
  from sact_tf.data import cluttered_digits
  test = cluttered_digits.load("test")
  if isinstance(num_images, bool) or not isinstance(
      num_images, int) or not 1 <= num_images <= len(test["label"]):
    raise ValueError(f"num_images must be in [1, {len(test['label'])}], "
                     f"received num_images={num_images!r}")
  checks.check_int("num_fixations", num_fixations, minimum=2)
  if not sigma > 0:
    raise ValueError(f"sigma must be > 0, received sigma={sigma!r}")
  rng = np.random.default_rng(seed)
  for i in range(num_images):
    image = test["image"][i]
    fixations = box_fixations(image.shape[:2], test["box"][i], num_fixations,
                              rng)
    write_stimulus(directory, f"digit_{test['label'][i]}", f"{i + 1:04d}",
                   image, fixations, fixation_density(fixations, sigma))
  return num_images
