"""Charts of the lesion study and of the FLOPs-accuracy trade-off."""

import os

import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np


def _save(figure, path, layout=True):
  """Writes the PNG; `layout=False` keeps a layout the caller already made."""
  if layout:
    figure.tight_layout()
  figure.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(figure)


def draw_lesion_study(study, output_dir):
  """Writes one PNG per lesion experiment of `study` into `output_dir`.

  Args:
    study: dict as `tools/lesion_study.py` writes it (`full`, and any of
      `single_deletion`, `random_deletion`, `reordering`, `lesion_resnet`).
    output_dir: str, an existing directory.

  Returns:
    list of the paths written.
  """
  paths = []
  base = study["full"]["error"]
  if study.get("single_deletion"):
    rows = study["single_deletion"]
    figure, axes = plt.subplots(figsize=(max(4, 0.5 * len(rows)), 3.5))
    axes.bar(range(len(rows)), [r["error"] for r in rows])
    axes.axhline(base, color="k", linestyle="--", label="no deletion")
    axes.set_xticks(range(len(rows)), [r["unit"] for r in rows],
                    rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("test error")
    axes.set_title("one unit deleted")
    axes.legend()
    paths.append(os.path.join(output_dir, "single_deletion.png"))
    _save(figure, paths[-1])
  for key, xlabel in (("random_deletion", "units deleted at random"),
                      ("reordering", "random swaps of two units")):
    rows = study.get(key)
    if not rows:
      continue
    figure, axes = plt.subplots(figsize=(4.5, 3.5))
    axes.errorbar([0] + [r["count"] for r in rows],
                  [base] + [r["error_mean"] for r in rows],
                  yerr=[0] + [r["error_std"] for r in rows], marker="o",
                  capsize=3)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test error (mean, std over draws)")
    paths.append(os.path.join(output_dir, f"{key}.png"))
    _save(figure, paths[-1])
  if study.get("lesion_resnet"):
    points = study["lesion_resnet"]["points"]
    figure, axes = plt.subplots(figsize=(4.5, 3.5))
    axes.plot([p["flops"] / 1e6 for p in points],
              [1 - p["error"] for p in points], marker="o")
    axes.set_xlabel("FLOPs per image (millions)")
    axes.set_ylabel("test accuracy")
    axes.set_title("LesionResNet (greedy deletion)")
    paths.append(os.path.join(output_dir, "lesion_resnet.png"))
    _save(figure, paths[-1])
  return paths


def draw_tradeoff(curves, path, min_accuracy=None):
  """The FLOPs-accuracy chart: one curve per family, mean and std over seeds.

  Args:
    curves: `{family label: [point dicts]}`, each point with `point` (its
      label), `flops_mean`, `flops_std`, `accuracy_mean`, `accuracy_std`
      (the `tradeoff` tool's table rows), drawn in order of FLOPs.
    path: str, the PNG written.
    min_accuracy: float or None. The bottom of the accuracy axis: a point
      whose mean lies below it is drawn on the axis as a hollow downward
      triangle, without error bars, and a second, shorter panel below shows
      every point at full scale, so that a family far below the others
      (LesionResNet) neither flattens the chart nor leaves it. None: one
      panel that fits every point.

  Returns:
    list of `(family label, point label, accuracy_mean)` of the points drawn
    below the axis (in the order drawn; empty without `min_accuracy`).
  """
  if min_accuracy is None:
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    full_scale = None
  else:
    figure, (axes, full_scale) = plt.subplots(
        2, 1, figsize=(6.5, 6.5), sharex=True, height_ratios=(3, 1.2))
  clipped = []
  for label, points in sorted(curves.items()):
    points = sorted(points, key=lambda p: p["flops_mean"])
    flops = np.array([p["flops_mean"] for p in points]) / 1e6
    flops_std = np.array([p["flops_std"] for p in points]) / 1e6
    accuracy = np.array([p["accuracy_mean"] for p in points])
    accuracy_std = [p["accuracy_std"] for p in points]
    below = (accuracy < min_accuracy if min_accuracy is not None else
             np.zeros(len(points), bool))
    container = axes.errorbar(
        flops, np.where(below, np.nan, accuracy), xerr=flops_std,
        yerr=accuracy_std, marker="o", capsize=3, label=label)
    color = container.lines[0].get_color()
    if below.any():
      clipped += [(label, p["point"], p["accuracy_mean"])
                  for p, b in zip(points, below) if b]
      shown = np.where(below, min_accuracy, accuracy)
      axes.plot(flops, shown, color=color, alpha=0.5, linestyle=":")
      axes.plot(flops[below], shown[below], linestyle="none", marker="v",
                markersize=8, markerfacecolor="none", color=color)
    if full_scale is not None:
      full_scale.errorbar(flops, accuracy, xerr=flops_std, yerr=accuracy_std,
                          marker="o", markersize=3, capsize=2, color=color)
  axes.set_ylabel("test accuracy (mean ± std over seeds)")
  if full_scale is None:
    axes.set_xlabel("FLOPs per image (millions)")
  else:
    axes.set_ylim(bottom=min_accuracy - 0.005)
    if clipped:
      axes.set_title(f"hollow triangles: mean accuracy below {min_accuracy:g}"
                     f" (all points at full scale below)", fontsize=8)
    full_scale.set_xlabel("FLOPs per image (millions)")
    full_scale.set_ylabel("full scale")
    full_scale.grid(alpha=0.3)
  axes.grid(alpha=0.3)
  figure.tight_layout()
  # Beside the chart, after the layout: inside, it would hide points
  # wherever they fall; the saved image's bounds take it in.
  axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1),
              borderaxespad=0)
  _save(figure, path, layout=False)
  return clipped
