"""Charts of the lesion study and of the FLOPs-accuracy trade-off."""

import os

import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np


def _save(figure, path):
  figure.tight_layout()
  figure.savefig(path, dpi=120)
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


def draw_tradeoff(curves, path):
  """The FLOPs-accuracy chart: one curve per family, mean and std over seeds.

  Args:
    curves: `{family label: [point dicts]}`, each point with `flops_mean`,
      `flops_std`, `accuracy_mean`, `accuracy_std` (the `tradeoff` tool's
      table rows), drawn in order of FLOPs.
    path: str, the PNG written.
  """
  figure, axes = plt.subplots(figsize=(6.5, 4.5))
  for label, points in sorted(curves.items()):
    points = sorted(points, key=lambda p: p["flops_mean"])
    axes.errorbar(np.array([p["flops_mean"] for p in points]) / 1e6,
                  [p["accuracy_mean"] for p in points],
                  xerr=np.array([p["flops_std"] for p in points]) / 1e6,
                  yerr=[p["accuracy_std"] for p in points], marker="o",
                  capsize=3, label=label)
  axes.set_xlabel("FLOPs per image (millions)")
  axes.set_ylabel("test accuracy (mean ± std over seeds)")
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  _save(figure, path)
