"""The evaluation's picture of SACT ponder cost maps or sampling density
maps (matplotlib)."""

import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np

from sact_tf.utils import files

COLORMAP = "viridis"


def _displayable(image):
  """Min-max normalizes a network input (any range) to [0, 1]."""
  image = np.asarray(image, np.float64)
  low, high = image.min(), image.max()
  return (image - low) / (high - low) if high > low else np.zeros_like(image)


def draw_ponder_maps(examples, path, max_columns=8):
  """Draws inputs over their ponder cost maps, one column per example.

  Top row: the model inputs (min-max normalized); bottom row: the ponder
  cost maps (summed over blocks, at the input resolution) in viridis, on
  one colour scale for all examples, with a colour bar; each map's title
  is its mean ponder cost. Written atomically. For the sampling family
  (no `ponder_cost_map`) the sampling density maps instead.

  Args:
    examples: dict with `images` float `[n, H, W, 3]` and
      `ponder_cost_map` (or `sampling_density_map`) float `[n, H, W, 1]`.
    path: str, the PNG file (replaced if it exists).
    max_columns: int, the most examples drawn. Defaults to 8.
  """
  images = np.asarray(examples["images"])[:max_columns]
  key = ("ponder_cost_map" if "ponder_cost_map" in examples
         else "sampling_density_map")
  maps = np.asarray(examples[key])[:max_columns, ..., 0]
  n = len(images)
  if n == 0:
    raise ValueError("draw_ponder_maps received no examples")
  vmin, vmax = float(maps.min()), float(maps.max())
  fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 0.8, 3.6), squeeze=False)
  for i in range(n):
    axes[0, i].imshow(_displayable(images[i]))
    shown = axes[1, i].imshow(maps[i], cmap=COLORMAP, vmin=vmin,
                              vmax=max(vmax, vmin + 1e-6))
    axes[1, i].set_title(f"{maps[i].mean():.2f}", fontsize=9)
    for ax in axes[:, i]:
      ax.axis("off")
  fig.colorbar(shown, ax=axes[1, :].tolist(), fraction=0.05,
               label=key[:-len("_map")].replace("_", " "))
  axes[0, 0].set_title("input", fontsize=9, loc="left")
  with files.atomic_output(path, overwrite=True) as tmp:
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
