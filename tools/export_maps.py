"""Exports what an ACT/SACT model computes on N examples into an HDF5 file.

The original `imagenet_export.py`: per block ponder cost, number of units,
halting distribution and FLOPs, the total FLOPs, the input images and, for
SACT, the ponder cost and number-of-units maps of the first
`--num_examples` examples of a split (see `sact_tf/viz/h5_export.py` for the
layout). The model, its dataset and image size come from the run directory.
Draw the maps with `tools/draw_ponder_maps.py`. Example:

  python tools/export_maps.py --checkpoint_dir=runs/sact \
      --export_path=maps.h5 --num_examples=256
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
from absl import flags

from sact_tf.viz import h5_export

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "A run directory of tools/train.py, one of its "
                    "checkpoints, or a checkpoint of the original release.")
flags.DEFINE_string("export_path", None, "The HDF5 file to write.")
flags.DEFINE_integer("num_examples", 1000, "The number of examples.")
flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
flags.DEFINE_string("split_name", None,
                    "The split; default: the dataset's evaluation split.")
flags.DEFINE_string("dataset_dir", None,
                    "The original's TF-Slim TFRecords; default: the run's "
                    "data.")
flags.DEFINE_bool("use_ema", None,
                  "Use the moving averages of the weights; default: what "
                  "the run evaluates.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_path.")
flags.mark_flags_as_required(["checkpoint_dir", "export_path"])


def main(argv):
  del argv
  try:
    count, config = h5_export.export_checkpoint(
        FLAGS.checkpoint_dir, FLAGS.export_path, FLAGS.num_examples,
        FLAGS.batch_size, FLAGS.split_name, FLAGS.dataset_dir, FLAGS.use_ema,
        FLAGS.overwrite)
  except ValueError as e:
    sys.exit(f"export_maps: error: {e}")
  print(f"Exported {count} examples of {config['dataset']} through "
        f"{config['checkpoint']} to {FLAGS.export_path}")


if __name__ == "__main__":
  app.run(main)
