"""SACT's ponder cost maps beside the sampling family's density maps.

Runs each run directory (SACT or `--model_type=sampling`, one dataset and
image size) on the first `--num_examples` examples of the evaluation split
and draws one PNG: a row per example, the input, then each run's map
(SACT: ponder cost; sampling: sampled fraction), one colour scale per
column, the digit's box outlined on the cluttered digits. Prints each
run's mean map per example. Example:

  python tools/compare_maps.py \\
      --checkpoint_dirs=runs/digits_sact,runs/digits_sampling \\
      --num_examples=8 --output=docs/sact_vs_sampling_maps.png
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
from absl import flags

from sact_tf.utils import files
from sact_tf.viz import map_comparison

FLAGS = flags.FLAGS
flags.DEFINE_list("checkpoint_dirs", None,
                  "Run directories of tools/train.py (or checkpoints) of "
                  "SACT or sampling models, comma-separated, drawn in this "
                  "order.")
flags.DEFINE_integer("num_examples", 8, "The first examples of the split.")
flags.DEFINE_string("split_name", None,
                    "The split; default: the dataset's evaluation split.")
flags.DEFINE_bool("use_ema", None,
                  "Use the moving averages of the weights; default: what "
                  "each run evaluates.")
flags.DEFINE_string("output", None, "The PNG file to write.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["checkpoint_dirs", "output"])


def main(argv):
  del argv
  try:
    files.check_writable_output(FLAGS.output, FLAGS.overwrite)
    comparison = map_comparison.checkpoint_maps(
        FLAGS.checkpoint_dirs, FLAGS.num_examples, FLAGS.split_name,
        FLAGS.use_ema)
    map_comparison.draw_map_comparison(comparison, FLAGS.output,
                                       FLAGS.overwrite)
  except ValueError as e:
    sys.exit(f"compare_maps: error: {e}")
  for column in comparison["columns"]:
    means = " ".join(f"{m.mean():.4f}" for m in column["maps"])
    print(f"{column['name']} ({column['label']}): {means}")
  print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
