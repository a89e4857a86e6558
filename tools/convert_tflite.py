"""Converts an exported SavedModel to TFLite, with builtin ops only.

The `serving_default` signature (float32 `images`, preprocessed) becomes the
`.tflite` file's signature with the same outputs. Conversion fails, naming
the ops, if the graph would need the Flex delegate. Example:

  python tools/convert_tflite.py --saved_model_dir=exports/sact/1 \
      --output=sact.tflite [--quantize=dynamic_range]
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import contextlib
import os
import sys
import tempfile

from absl import app
from absl import flags

from sact_tf.export import tflite

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model_dir", None,
                    "A SavedModel of tools/export_saved_model.py (one "
                    "version: <export_dir>/<version>).")
flags.DEFINE_string("output", None, "The .tflite file to write.")
flags.DEFINE_enum("quantize", "none", list(tflite.QUANTIZATIONS),
                  "none: float32; dynamic_range: int8 weights, activations "
                  "quantized on the fly (about 4x smaller).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["saved_model_dir", "output"])


@contextlib.contextmanager
def _quiet_stderr():
  """Keeps the converter's MLIR dumps (written by C++) off the terminal."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as log:
    os.dup2(log.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


def main(argv):
  del argv
  try:
    with _quiet_stderr():
      size = tflite.write_tflite(FLAGS.saved_model_dir, FLAGS.output,
                                 FLAGS.quantize, FLAGS.overwrite)
  except ValueError as e:
    sys.exit(f"convert_tflite: error: {e}")
  print(f"Wrote {FLAGS.output} ({size} bytes, quantize={FLAGS.quantize}) "
        f"from {FLAGS.saved_model_dir}")


if __name__ == "__main__":
  app.run(main)
