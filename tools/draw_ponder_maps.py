"""Draws the ponder cost maps of an HDF5 file of `tools/export_maps.py`.

The original `draw_ponder_maps.py`: for every example `i` with mean ponder
cost `m`, `{m:.2f}_{i}_ponder.png` (viridis, scaled between the 0.1st and
99.9th percentiles of all the maps) and `{m:.2f}_{i}_im.jpg` (the input),
and one `colorbar.png`. Example:

  python tools/draw_ponder_maps.py --input_file=maps.h5 --output_dir=maps
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import os
import sys

from absl import app
from absl import flags

from sact_tf.viz import ponder_maps

FLAGS = flags.FLAGS
flags.DEFINE_string("input_file", None,
                    "An HDF5 file of tools/export_maps.py (a SACT model).")
flags.DEFINE_string("output_dir", None,
                    "The directory to draw the maps to (created if needed).")
flags.mark_flags_as_required(["input_file", "output_dir"])


def main(argv):
  del argv
  try:
    if not os.path.isfile(FLAGS.input_file):
      raise ValueError(f"--input_file {FLAGS.input_file} does not exist")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    low, high = ponder_maps.draw_h5(FLAGS.input_file, FLAGS.output_dir)
  except ValueError as e:
    sys.exit(f"draw_ponder_maps: error: {e}")
  print(f"0.1st percentile of ponder cost {low:.2f}")
  print(f"99.9th percentile of ponder cost {high:.2f}")


if __name__ == "__main__":
  app.run(main)
