"""Ponder cost maps of a SACT model for your own photos.

The original `imagenet_ponder_map.py`: every photo matching
`--images_pattern` (JPEG, PNG, grayscale, CMYK, ...) is fed whole to the
model, optionally resized so that its longer edge has `--image_size` pixels;
`--output_dir` receives `<name>_im.png` (the photo as the model saw it),
`<name>_ponder.png` (the map, viridis from its minimum to its maximum),
`<name>_overlay.png` (the map over the photo) and `<name>_colorbar.png`.
All photos are checked before any is processed. Example:

  python tools/ponder_map.py --checkpoint_dir=models/imagenet_101_sact \
      --images_pattern='pics/*.jpg' --output_dir=maps --image_size=512
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import os
import sys

from absl import app
from absl import flags

from sact_tf.training import checkpoint_io
from sact_tf.viz import photos
from sact_tf.viz import ponder_maps

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "A run directory of tools/train.py, one of its "
                    "checkpoints, or a checkpoint of the original release "
                    "(a SACT model).")
flags.DEFINE_string("images_pattern", None,
                    "Glob pattern of the photos, e.g. 'pics/*.jpg'.")
flags.DEFINE_string("output_dir", None,
                    "The directory to write the pictures to (created if "
                    "needed).")
flags.DEFINE_integer("image_size", 0,
                     "Resize the photos so that the longer edge has this "
                     "many pixels; 0 (the default) keeps their size.")
flags.DEFINE_integer("max_image_size", photos.MAX_IMAGE_SIZE,
                     "Without --image_size, refuse photos whose longer edge "
                     "is larger.")
flags.DEFINE_float("alpha", ponder_maps.OVERLAY_ALPHA,
                   "Weight of the map in the overlay.")
flags.DEFINE_bool("use_ema", None,
                  "Use the moving averages of the weights; default: what "
                  "the run evaluates.")
flags.mark_flags_as_required(["checkpoint_dir", "images_pattern",
                              "output_dir"])


def main(argv):
  del argv
  try:
    paths = photos.find_photos(FLAGS.images_pattern)
    for path in paths:  # Every photo is checked before any work.
      photos.load_photo(path, FLAGS.image_size, FLAGS.max_image_size)
    model, config = checkpoint_io.restore_model(
        FLAGS.checkpoint_dir, FLAGS.use_ema, execution="sparse")
    for path in paths:
      print(f"Processing {path}")
      photo = photos.load_photo(path, FLAGS.image_size, FLAGS.max_image_size)
      ponder_map = photos.ponder_cost_map(model, photo, config["family"])
      os.makedirs(FLAGS.output_dir, exist_ok=True)
      name = os.path.splitext(os.path.basename(path))[0]
      low, high = ponder_maps.draw_photo(FLAGS.output_dir, name, photo,
                                         ponder_map, FLAGS.alpha)
      print(f"Minimum/maximum ponder cost {low:.2f}/{high:.2f}")
  except ValueError as e:
    sys.exit(f"ponder_map: error: {e}")


if __name__ == "__main__":
  app.run(main)
