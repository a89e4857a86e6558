"""Pictures of ponder cost maps, as the original `draw_ponder_maps.py` and
`imagenet_ponder_map.py` drew them: viridis colours between two limits, a
colour bar, and (new) the map blended over the image.

Every picture is written atomically (`sact_tf.utils.files.atomic_output`),
replacing a file of the same name, as the original did.
"""

import os

import h5py
import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np
from PIL import Image

from sact_tf.utils import files

COLORMAP = "viridis"
# The original's limits over a whole HDF5 export: its 0.1st and 99.9th
# percentiles of the ponder cost.
PERCENTILES = (0.1, 99.9)
COLORBAR_SIZE = (0.2, 2.0)  # inches, as the original
COLORBAR_DPI = 200
OVERLAY_ALPHA = 0.5
# sact_tf.data.preprocessing.FAMILIES; not imported, so that drawing needs no
# TensorFlow.
FAMILIES = ("cifar", "imagenet")


def percentile_range(maps, percentiles=PERCENTILES):
  """The colour limits of a set of maps: `(low, high)` percentiles, floats."""
  low, high = np.percentile(np.asarray(maps, np.float64).ravel(), percentiles)
  return float(low), float(high)


def _norm(vmin, vmax):
  if not vmin <= vmax:
    raise ValueError(f"expected vmin <= vmax, received vmin={vmin!r}, "
                     f"vmax={vmax!r}")
  if vmin == vmax:  # A constant map: centre its value in a unit range.
    vmin, vmax = vmin - 0.5, vmax + 0.5
  return matplotlib.colors.Normalize(vmin=vmin, vmax=vmax, clip=True)


def colorize(ponder_map, vmin, vmax):
  """A map in viridis colours.

  Args:
    ponder_map: float `[H, W]` or `[H, W, 1]`.
    vmin, vmax: floats, the values drawn darkest and brightest; values
      outside are clipped.

  Returns:
    uint8 `[H, W, 3]` RGB.
  """
  values = np.squeeze(np.asarray(ponder_map, np.float64), axis=tuple(
      range(2, np.ndim(ponder_map))))
  if values.ndim != 2:
    raise ValueError(f"expected a map [H, W] or [H, W, 1], received shape "
                     f"{np.shape(ponder_map)}")
  rgba = matplotlib.colormaps[COLORMAP](_norm(vmin, vmax)(values))
  return np.round(rgba[..., :3] * 255).astype(np.uint8)


def overlay(image, ponder_map, vmin, vmax, alpha=OVERLAY_ALPHA):
  """The coloured map blended over an image of the same size.

  Args:
    image: uint8 `[H, W, 3]`.
    ponder_map: float `[H, W]` or `[H, W, 1]`.
    vmin, vmax: floats, see `colorize`.
    alpha: float in [0, 1], the weight of the map. Defaults to 0.5.

  Returns:
    uint8 `[H, W, 3]`.
  """
  if not 0 <= alpha <= 1:
    raise ValueError(f"alpha must be in [0, 1], received alpha={alpha!r}")
  colors = colorize(ponder_map, vmin, vmax)
  image = np.asarray(image)
  if image.shape != colors.shape or image.dtype != np.uint8:
    raise ValueError(f"expected a uint8 image of shape {colors.shape}, "
                     f"received {image.dtype} {image.shape}")
  blend = (1 - alpha) * image.astype(np.float64) + alpha * colors
  return np.round(blend).astype(np.uint8)


def save_image(path, image):
  """Writes a uint8 `[H, W, 3]` array as a picture (format from the name)."""
  with files.atomic_output(path, overwrite=True) as tmp:
    # The temporary file keeps the extension, which names the format.
    Image.fromarray(np.asarray(image, np.uint8)).save(tmp)


def save_colorbar(path, vmin, vmax):
  """Writes a vertical viridis colour bar from `vmin` to `vmax` (PNG)."""
  fig = plt.figure(figsize=COLORBAR_SIZE)
  try:
    ax = fig.add_axes([0.0, 0.0, 1.0, 1.0])
    matplotlib.colorbar.ColorbarBase(ax, cmap=COLORMAP,
                                     norm=_norm(vmin, vmax))
    ax.tick_params(labelsize=12)
    with files.atomic_output(path, overwrite=True) as tmp:
      fig.savefig(tmp, format="png", bbox_inches="tight", dpi=COLORBAR_DPI)
  finally:
    plt.close(fig)


def display_image(model_input_image, family):
  """A preprocessed model input as a picture, for drawing HDF5 exports.

  Args:
    model_input_image: float `[H, W, 3]`, a model input of `family`.
    family: str. `"imagenet"`: inputs in [-1, 1] are mapped back to [0, 1]
      (the original `draw_ponder_maps.py`); `"cifar"`: per-image standardized
      inputs are stretched from their minimum to their maximum.

  Returns:
    uint8 `[H, W, 3]`.
  """
  if family not in FAMILIES:
    raise ValueError(f"family must be one of {FAMILIES}, received "
                     f"family={family!r}")
  image = np.asarray(model_input_image, np.float64)
  if family == "imagenet":
    image = (image + 1.0) / 2.0
  else:
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else image * 0.0
  return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def draw_h5(input_file, output_dir):
  """The original `draw_ponder_maps.py`: pictures of an HDF5 export.

  Writes to `output_dir` (which must exist) `colorbar.png` and, for every
  example `i` with mean ponder cost `m`, `{m:.2f}_{i}_ponder.png` (the map,
  viridis between the 0.1st and 99.9th percentiles of all maps) and
  `{m:.2f}_{i}_im.jpg` (the input image).

  Args:
    input_file: str, an HDF5 file of `h5_export.export_to_h5` of a SACT
      model.
    output_dir: str.

  Returns:
    `(low, high)`, the colour limits.
  """
  try:
    data = h5py.File(input_file, "r")
  except OSError as e:
    raise ValueError(f"{input_file} is not an HDF5 file: {e}") from e
  with data:
    if "ponder_cost_map" not in data or "images" not in data:
      raise ValueError(f"{input_file} has no ponder_cost_map and images; "
                       f"expected an export of a SACT model by "
                       f"tools/export_maps.py")
    family = data.attrs.get("family", "imagenet")
    maps = data["ponder_cost_map"][:]
    low, high = percentile_range(maps)
    save_colorbar(os.path.join(output_dir, "colorbar.png"), low, high)
    for i, ponder_map in enumerate(maps):
      prefix = os.path.join(output_dir, f"{ponder_map.mean():.2f}_{i}")
      save_image(prefix + "_ponder.png", colorize(ponder_map, low, high))
      save_image(prefix + "_im.jpg",
                 display_image(data["images"][i], family))
  return low, high


def draw_photo(output_dir, name, photo, ponder_map, alpha=OVERLAY_ALPHA):
  """The original `imagenet_ponder_map.py` pictures of one photo.

  Writes `{name}_im.png` (the photo as the model saw it), `{name}_ponder.png`
  (the map, viridis between its own minimum and maximum),
  `{name}_overlay.png` (the map blended over the photo) and
  `{name}_colorbar.png` to `output_dir`.

  Args:
    output_dir: str, an existing directory.
    name: str, the base name of the files.
    photo: uint8 `[H, W, 3]`.
    ponder_map: float `[H, W]`.
    alpha: float, the map's weight in the overlay. Defaults to 0.5.

  Returns:
    `(minimum, maximum)` of the map.
  """
  low, high = float(np.min(ponder_map)), float(np.max(ponder_map))
  prefix = os.path.join(output_dir, name)
  save_image(prefix + "_im.png", photo)
  save_image(prefix + "_ponder.png", colorize(ponder_map, low, high))
  save_image(prefix + "_overlay.png",
             overlay(photo, ponder_map, low, high, alpha))
  save_colorbar(prefix + "_colorbar.png", low, high)
  return low, high
