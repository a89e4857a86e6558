"""Tabulates the evaluations of training runs: accuracy against FLOPs.

For each run directory of `tools/train.py` (evaluated: `<run>/eval/
metrics.json`, written by the training's final evaluation or by
`tools/evaluate.py`), one row: the model type, `tau`, the accuracy, the mean
FLOPs per image, the FLOPs as a fraction of the same network without
halting (a vanilla model of the run's architecture, counted on one input of
the run's size), and the mean of the run's map on the object and on the
background (datasets with object boxes: the offline cluttered digits): SACT's
ponder cost, or the sampling family's sampled fraction, whose point is its
sparse loss weight where the halting families' is `tau`. The results
table of docs/results.md (single runs of the digits presets) is this
tool's output:

  for tau in 0.01 0.05 0.1; do
    python tools/train.py --config=digits_sact --tau=$tau \\
        --train_log_dir=runs/digits_sact_$tau
  done
  python tools/results_table.py runs/digits_*
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
import numpy as np

from sact_tf.training.run_results import run_row


def _cell(value, fmt):
  return "" if value is None else format(value, fmt)


def markdown(rows):
  """The rows as a Markdown table (str)."""
  lines = ["| run | model | tau / loss weight | accuracy | FLOPs/image "
           "| FLOPs vs vanilla | map on the digit | on the background |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    sampling = r["model_type"] == "sampling"
    point = (f"weight={r['sparse_loss_weight']:g}" if sampling else
             _cell(r["tau"], "g"))
    on_object, background = ((r["density_object"], r["density_background"])
                             if sampling else
                             (r["ponder_object"], r["ponder_background"]))
    lines.append(
        f"| {r['run']} | {r['model_type']} | {point} | "
        f"{r['accuracy']:.3f} | {r['flops'] / 1e6:.2f}M | "
        f"{r['flops_fraction']:.0%} | {_cell(on_object, '.2f')} | "
        f"{_cell(background, '.2f')} |")
  return "\n".join(lines)


def main(argv):
  run_dirs = argv[1:]
  try:
    if not run_dirs:
      raise ValueError("give the run directories to tabulate, e.g. "
                       "python tools/results_table.py runs/*")
    rows = [run_row(d) for d in run_dirs]
  except ValueError as e:
    sys.exit(f"results_table: error: {e}")
  rows.sort(key=lambda r: (r["model_type"] != "vanilla", r["model_type"],
                           -np.inf if r["tau"] is None else r["tau"],
                           r["sparse_loss_weight"] or 0))
  print(markdown(rows))


if __name__ == "__main__":
  app.run(main)
