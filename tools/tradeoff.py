"""The FLOPs-accuracy trade-off of several families, over seeds.

  python tools/tradeoff.py runs/vanilla_d*_s* runs/sact_*_s* \\
      runs/lesion_*_s* --output_dir=runs/tradeoff

Each argument is an evaluated run directory of `tools/train.py` (see
`tools/results_table.py`) or an output directory of `tools/lesion_study.py`
(its LesionResNet points). Every run or study is a point of a family:

* vanilla networks (one point per depth `model`), stochastic-depth networks
  (per `p_L` and depth), ACT and SACT (per `tau`), stochastic feature
  sampling (`--model_type=sampling`, per `--sparse_loss_weight`), each
  point the mean and standard deviation over the runs that differ only in
  `--seed`;
* LesionResNet from a vanilla or a stochastic-depth network (per source
  depth and FLOPs budget), over the seeds of the source runs.

Writes `<output_dir>/tradeoff.png` (one curve per family, error bars the
std over seeds), `tradeoff.md` (the table, also printed) and
`tradeoff.json` (the points), all at once.
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import collections
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

from sact_tf.training.run_results import run_row
from sact_tf.utils import files
from sact_tf.viz import tradeoff_charts

STUDY_FILE = "lesion_study.json"
FAMILY_NAMES = {"vanilla": "vanilla", "act": "ACT",
                "act_early_stopping": "ACT (early stopping)", "sact": "SACT",
                "sampling": "sampling"}

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None,
                    "Directory written with tradeoff.png, .md and .json "
                    "(must not exist, unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
flags.DEFINE_float("min_accuracy", None,
                   "Bottom of the chart's accuracy axis; points below it are "
                   "drawn on the axis as hollow triangles (default: fit all).")
flags.mark_flag_as_required("output_dir")


def run_points(run_dir):
  """`[(family, point label, seed, flops, accuracy)]` of a run directory."""
  row = run_row(run_dir)
  family = FAMILY_NAMES[row["model_type"]]
  if row["model_type"] == "vanilla":
    if row["stochastic_depth"] < 1:
      family = f"stochastic depth p_L={row['stochastic_depth']:g}"
    point = f"model={row['model']}"
  elif row["model_type"] == "sampling":
    point = f"weight={row['sparse_loss_weight']:g}"
  else:
    point = f"tau={row['tau']:g}"
  return [(family, point, row["seed"], row["flops"], row["accuracy"])]


def study_points(study_dir):
  """The LesionResNet points of a lesion-study directory."""
  with open(os.path.join(study_dir, STUDY_FILE), encoding="utf-8") as f:
    study = json.load(f)
  if "lesion_resnet" not in study:
    raise ValueError(f"{study_dir!r} has no LesionResNet results (run "
                     f"tools/lesion_study.py with lesion_resnet in "
                     f"--experiments)")
  kwargs = study["model_kwargs"]
  p_last = kwargs.get("stochastic_depth", 1.0)
  source = (f"stochastic depth p_L={p_last:g}" if p_last < 1 else "vanilla")
  family = f"LesionResNet from {source} model={kwargs['model']}"
  return [(family, f"budget={p['budget']:g}", study["seed"], p["flops"],
           1.0 - p["error"]) for p in study["lesion_resnet"]["points"]]


def points_of(path):
  if os.path.isfile(os.path.join(path, STUDY_FILE)):
    return study_points(path)
  return run_points(path)


def _std(values):
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def aggregate(points):
  """`{family: [row]}`, a row per point: mean and std over seeds."""
  grouped = collections.defaultdict(list)
  for family, point, seed, flops, accuracy in points:
    grouped[(family, point)].append((seed, flops, accuracy))
  curves = collections.defaultdict(list)
  for (family, point), runs in grouped.items():
    seeds = [s for s, _, _ in runs]
    if len(set(seeds)) != len(seeds):
      raise ValueError(f"{family} {point}: two runs with the same seed "
                       f"{seeds}")
    flops = [f for _, f, _ in runs]
    accuracy = [a for _, _, a in runs]
    curves[family].append({
        "family": family, "point": point, "seeds": seeds,
        "flops_mean": float(np.mean(flops)), "flops_std": _std(flops),
        "accuracy_mean": float(np.mean(accuracy)),
        "accuracy_std": _std(accuracy)})
  for rows in curves.values():
    rows.sort(key=lambda r: r["flops_mean"])
  return dict(curves)


def markdown(curves):
  lines = ["| family | point | seeds | FLOPs/image (M) | test accuracy |",
           "|---|---|---|---|---|"]
  for family in sorted(curves):
    for r in curves[family]:
      lines.append(
          f"| {family} | {r['point']} | {len(r['seeds'])} | "
          f"{r['flops_mean'] / 1e6:.2f} ± {r['flops_std'] / 1e6:.2f} | "
          f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} |")
  return "\n".join(lines)


def main(argv):
  paths = argv[1:]
  try:
    if not paths:
      raise ValueError("give run directories and lesion-study directories, "
                       "e.g. python tools/tradeoff.py runs/* --output_dir=DIR")
    if FLAGS.min_accuracy is not None and not 0 <= FLAGS.min_accuracy < 1:
      raise ValueError(f"--min_accuracy must be in [0, 1), received "
                       f"{FLAGS.min_accuracy!r}")
    files.check_writable_output(FLAGS.output_dir, FLAGS.overwrite)
    curves = aggregate([p for path in paths for p in points_of(path)])
    table = markdown(curves)
    with files.atomic_output(FLAGS.output_dir, FLAGS.overwrite,
                             is_dir=True) as tmp:
      clipped = tradeoff_charts.draw_tradeoff(
          curves, os.path.join(tmp, "tradeoff.png"), FLAGS.min_accuracy)
      with open(os.path.join(tmp, "tradeoff.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
      with open(os.path.join(tmp, "tradeoff.json"), "w",
                encoding="utf-8") as f:
        json.dump(curves, f, indent=2)
        f.write("\n")
  except ValueError as e:
    sys.exit(f"tradeoff: error: {e}")
  print(table)
  for family, point, accuracy in clipped:
    print(f"below --min_accuracy on the chart: {family} {point} "
          f"({accuracy:.3f})")


if __name__ == "__main__":
  app.run(main)
