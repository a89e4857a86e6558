"""Converts a checkpoint of the original SACT release into a `.keras` file.

The architecture (CIFAR or ImageNet, depth, width, classes, vanilla / ACT /
SACT) is read from the checkpoint's variables; flags override it. Example,
for the original's published ImageNet SACT model:

  python tools/convert_checkpoint.py \
      --checkpoint=models/imagenet_101_sact_5e-3 \
      --output=imagenet_101_sact.keras --tau=0.005
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
from absl import flags

from sact_tf import checkpoints
from sact_tf import models
from sact_tf.utils import files

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None,
                    "Original checkpoint: a prefix (model.ckpt-123) or a "
                    "directory (its latest checkpoint is used).")
flags.DEFINE_string("output", None, "The .keras file to write.")
flags.DEFINE_enum("model_type", None,
                  ["vanilla", "act", "act_early_stopping", "sact"],
                  "Overrides the inferred type (e.g. act_early_stopping for "
                  "an ACT checkpoint).")
flags.DEFINE_float("tau", None, "Ponder cost weight stored with the model.")
flags.DEFINE_enum("execution", "dense", ["dense", "sparse"],
                  "SACT execution of the converted model.")
flags.DEFINE_bool("use_moving_averages", False,
                  "Load the exponential moving averages of the weights "
                  "where the checkpoint has them.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["checkpoint", "output"])


def convert(checkpoint, output, model_type=None, tau=None, execution="dense",
            use_moving_averages=False, overwrite=False):
  """Builds the checkpoint's model, loads it and saves it to `output`."""
  if not output.endswith(".keras"):
    raise ValueError(f"--output must end in .keras, received {output!r}")
  files.check_writable_output(output, overwrite)
  arch = checkpoints.infer_architecture(checkpoint)
  family = arch.pop("family")
  if model_type:
    arch["model_type"] = model_type
  builder = {"cifar": models.cifar_resnet,
             "imagenet": models.imagenet_resnet}[family]
  model = builder(tau=tau, execution=execution, **arch)
  prefix = checkpoints.load_original_checkpoint(
      model, checkpoint, use_moving_averages=use_moving_averages)
  with files.atomic_output(output, overwrite) as tmp:
    model.save(tmp)
  return prefix, family, arch


def main(argv):
  del argv
  try:
    prefix, family, arch = convert(
        FLAGS.checkpoint, FLAGS.output, FLAGS.model_type, FLAGS.tau,
        FLAGS.execution, FLAGS.use_moving_averages, FLAGS.overwrite)
  except ValueError as e:
    sys.exit(f"convert_checkpoint: error: {e}")
  print(f"Converted {prefix} ({family} {arch}) to {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
