"""Exports a trained model as a SavedModel for TF Serving.

Writes `--export_dir/<version>/` (TF Serving's layout) with the signatures
`serving_default` (float32 `images` `[batch, S, S, 3]`, preprocessed) and
`serving_bytes` (string `image_bytes` `[batch]`, encoded JPEG or PNG files,
preprocessed in the graph as the model's evaluation does it); both return
`logits`, `probabilities`, the top-5 `classes`, `flops` and, for ACT and
SACT models, `<block>_ponder_cost` and (SACT) `ponder_cost_map`. SACT
models are exported with sparse execution; batch norms are folded into the
weights (`sact_tf.inference.optimize`, the same outputs up to float32
rounding) unless `--exact`.

A run of tools/train_detection.py (found by its config.json) is exported as
a detector: `images` are float32 in [-1, 1] and `image_bytes` are fitted
into the run's image size (aspect ratio kept, padded); both return `boxes`
(yxyx pixels of the input, of the file for `image_bytes`), `scores`,
`classes`, `num_detections`, the backbone's `flops` and, for ACT/SACT,
`<block>_ponder_cost` and (SACT) `ponder_cost_map`; the backbone's batch
norms are folded unless `--exact`. Examples:

  python tools/export_saved_model.py --checkpoint_dir=runs/sact \
      --export_dir=exports/sact --version=1
  python tools/export_saved_model.py --checkpoint_dir=runs/det_sact \
      --export_dir=exports/det_sact
  docker run -p 8500:8500 -p 8501:8501 \
      --mount type=bind,source=$PWD/exports/sact,target=/models/sact \
      -e MODEL_NAME=sact -t tensorflow/serving
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
from absl import flags

from sact_tf.export import saved_model

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "A run directory of tools/train.py or "
                    "tools/train_detection.py (its latest checkpoint), one "
                    "of its checkpoints, or a checkpoint of the original "
                    "release.")
flags.DEFINE_string("export_dir", None,
                    "The model's base directory for TF Serving; the "
                    "SavedModel goes to <export_dir>/<version>.")
flags.DEFINE_integer("version", 1, "The model version (a positive integer).")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.DEFINE_bool("use_ema", None,
                  "Export the moving averages of the weights; default: what "
                  "the run evaluates.")
flags.DEFINE_bool("exact", False,
                  "Export the model's exact computation (the original's "
                  "unfolded batch norms) instead of the inference-optimised "
                  "one.")
flags.mark_flags_as_required(["checkpoint_dir", "export_dir"])


def main(argv):
  del argv
  try:
    path, config = saved_model.export_checkpoint(
        FLAGS.checkpoint_dir, FLAGS.export_dir, FLAGS.version, FLAGS.overwrite,
        FLAGS.use_ema, FLAGS.exact)
  except ValueError as e:
    sys.exit(f"export_saved_model: error: {e}")
  size = config["image_size"]
  if "backbone_kwargs" in config:
    model_type = config["backbone_kwargs"]["model_type"]
    kind = f"detector, {model_type} backbone" + (
        " with sparse execution" if model_type == "sact" else "") + (
            f", {'exact' if FLAGS.exact else 'inference-optimised'}")
    returns = "boxes, scores, classes, num_detections"
  else:
    kind = (f"{config['family']} {config['model_kwargs']['model_type']}, "
            f"{'exact' if FLAGS.exact else 'inference-optimised'}")
    returns = "logits, probabilities, classes"
  print(f"Exported {config['checkpoint']} ({kind}) to {path}: signatures "
        f"{saved_model.SERVING_DEFAULT} ({saved_model.IMAGES} float32 "
        f"[batch, {size}, {size}, 3]) and {saved_model.SERVING_BYTES} "
        f"({saved_model.IMAGE_BYTES} string [batch], JPEG or PNG), returning "
        f"{returns}, flops")

if __name__ == "__main__":
  app.run(main)
