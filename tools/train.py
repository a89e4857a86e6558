"""Trains an ACT / SACT ResNet: the original's `cifar_main.py --mode=train`
and `imagenet_train.py` on TF2, with tf.distribute.

Quick start (offline data, a few minutes on a laptop CPU):

  python tools/train.py --config=digits_sact --train_log_dir=runs/sact_digits

The original's CIFAR-10 ResNet-32 SACT run, on its TF-Slim TFRecords:

  python tools/train.py --config=cifar_resnet32_sact \
      --dataset_dir=$HOME/tensorflow/data/cifar10 --train_log_dir=runs/c32

Settings come from the flags given, then the `--config` preset
(`configs/<name>.json`, or a path), then the defaults of the original's
scripts for the dataset's family. The full configuration is saved as
`<train_log_dir>/config.json`, so evaluation needs only the directory.
Re-running the command resumes from the latest checkpoint. Without
`--noeval_after_training` the final checkpoint is evaluated on
`--eval_split_name` (results in `<train_log_dir>/eval`).
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import os
import sys

from absl import app
from absl import flags

from sact_tf.training import loop
from sact_tf.training import run_config
from sact_tf.training import strategies
from sact_tf.training.evaluation_run import EvaluationRun
from sact_tf.training.figures import draw_ponder_maps

# Flags whose names differ from the configuration keys.
FLAG_TO_SETTING = {"split_name": "train_split",
                   "eval_split_name": "eval_split"}

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None,
                    "A preset: a name in configs/ (e.g. cifar_resnet110_sact) "
                    "or a path to a JSON file of flag values.")
flags.DEFINE_string("train_log_dir", None,
                    "Directory for checkpoints, summaries and config.json.")
flags.DEFINE_string("dataset", None,
                    "cluttered_digits (default; offline), "
                    "cluttered_digits_64 (its harder 64x64 variant; "
                    "offline), cifar10 or imagenet2012.")
flags.DEFINE_string("dataset_dir", None,
                    "Directory with the original's TF-Slim TFRecords "
                    "(cifar10_train.tfrecord, ...; train-*-of-*, ...). "
                    "Without it, cifar10 / imagenet2012 come from "
                    "tensorflow-datasets.")
flags.DEFINE_string("tfds_data_dir", None, "tensorflow-datasets data_dir.")
flags.DEFINE_string("tfds_manual_dir", None,
                    "Directory with the ILSVRC2012 tar files, for "
                    "tensorflow-datasets' imagenet2012.")
flags.DEFINE_string("split_name", None, "Training split. Default: train.")
flags.DEFINE_string("eval_split_name", None,
                    "Split of the final evaluation. Default: the dataset's "
                    "test / validation split.")
flags.DEFINE_integer("image_size", None,
                     "Input resolution. Default: the dataset's (32, 224).")
flags.DEFINE_string("model_type", None,
                    "vanilla (default), act, act_early_stopping, sact or "
                    "sampling (Xie et al.'s feature sampling).")
flags.DEFINE_string("model", None,
                    "Residual units per block: '5' (ResNet-32; default for "
                    "CIFAR), '18' (ResNet-110), '101' (default for ImageNet), "
                    "'3_4_23_3', ...")
flags.DEFINE_integer("base_channels", None,
                     "Width of the first block. Default: 16 CIFAR, 64 "
                     "ImageNet.")
flags.DEFINE_float("tau", None,
                   "Ponder cost weight (ACT / SACT). Default: 1.0, as the "
                   "original's flag; the presets use 0.01 / 0.005.")
flags.DEFINE_float("eps", None, "Halting threshold 1 - eps. Default: 0.01.")
flags.DEFINE_float("stochastic_depth", None,
                   "Stochastic depth (vanilla): p_L, the survival "
                   "probability of the last residual unit, in (0, 1] "
                   "(Huang et al.: 0.5). Default: 1, none.")
flags.DEFINE_float("sparse_loss_weight", None,
                   "Sparse loss weight (--model_type=sampling only). "
                   "Default: 0.1 (the reference sweeps 0.02-0.2).")
flags.DEFINE_string("execution", None,
                    "SACT execution: dense (default, as the original) or "
                    "sparse.")
flags.DEFINE_float("weight_decay", None,
                   "L2 weight decay. Default: 2e-4 CIFAR, 1e-4 ImageNet.")
flags.DEFINE_integer("batch_size", None,
                     "Global batch size. Default: 128 CIFAR, 32 ImageNet.")
flags.DEFINE_integer("max_number_of_steps", None,
                     "Training steps; 0: until stopped. Default: 100000 "
                     "CIFAR, 0 ImageNet.")
flags.DEFINE_float("learning_rate", None,
                   "Initial learning rate. Default: 0.1 CIFAR, 0.05 "
                   "ImageNet.")
flags.DEFINE_float("learning_rate_decay_factor", None,
                   "Learning rate decay factor. Default: 0.1.")
flags.DEFINE_list("learning_rate_boundaries", None,
                  "Steps at which the learning rate decays (CIFAR default: "
                  "60000,75000,90000).")
flags.DEFINE_float("num_epochs_per_decay", None,
                   "Epochs between learning rate decays (ImageNet default: "
                   "30).")
flags.DEFINE_float("momentum", None, "Momentum. Default: 0.9.")
flags.DEFINE_float("label_smoothing", None,
                   "Label smoothing. Default: 0 CIFAR, 0.1 ImageNet.")
flags.DEFINE_float("moving_average_decay", None,
                   "Decay of the moving averages of the weights, used for "
                   "evaluation; 0: none. Default: 0 CIFAR, 0.9999 ImageNet.")
flags.DEFINE_string("finetune_path", None,
                    "Initial weights (all but the halting branches): a "
                    ".keras file, a run directory or checkpoint, or an "
                    "original release checkpoint (TF1).")
flags.DEFINE_string("strategy", None,
                    "default, one_device, mirrored, multi_worker_mirrored "
                    "(cluster in TF_CONFIG) or tpu.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
flags.DEFINE_integer("seed", None,
                     "Seed of the weights, the data order and augmentation "
                     "and the stochastic depth gates: on CPU the same seed "
                     "gives the same loss curve. Default: unseeded.")
flags.DEFINE_integer("save_summaries_secs", 30,
                     "Seconds between TensorBoard summaries.")
flags.DEFINE_integer("save_interval_secs", 60,
                     "Seconds between checkpoints.")
flags.DEFINE_integer("log_every_n_steps", 100,
                     "Steps between progress lines.")
flags.DEFINE_bool("eval_after_training", True,
                  "Evaluate the final checkpoint.")
flags.DEFINE_integer("eval_batch_size", 100, "Batch size of that evaluation.")
flags.mark_flag_as_required("train_log_dir")


def settings_from_flags():
  """The preset's settings, overridden by the flags given."""
  settings = run_config.settings_from_flags(FLAGS, run_config.SETTINGS,
                                            FLAG_TO_SETTING)
  if settings.get("learning_rate_boundaries"):
    settings["learning_rate_boundaries"] = [
        int(b) for b in settings["learning_rate_boundaries"]]
  return settings


def main(argv):
  del argv
  try:
    settings = settings_from_flags()
    # First: MultiWorkerMirroredStrategy must exist before TF's runtime.
    strategy = strategies.make_strategy(
        settings.get("strategy") or run_config.COMMON_DEFAULTS["strategy"],
        FLAGS.tpu)
    config = run_config.make_config(settings)
    _, step, stopped = loop.train(
        config, FLAGS.train_log_dir, strategy, FLAGS.save_interval_secs,
        FLAGS.save_summaries_secs, FLAGS.log_every_n_steps)
    if stopped:
      sys.exit(128 + 15 if stopped == "SIGTERM" else 128 + 2)
    print(f"Trained to step {step} in {FLAGS.train_log_dir}")
    if FLAGS.eval_after_training and loop.is_chief(strategy):
      # The chief alone: the other workers have finished.
      if config["strategy"] == "multi_worker_mirrored":
        strategy = strategies.make_strategy("default")
      EvaluationRun(FLAGS.train_log_dir,
                    os.path.join(FLAGS.train_log_dir, "eval"), strategy,
                    batch_size=FLAGS.eval_batch_size,
                    picture_fn=draw_ponder_maps).run(once=True)
  except ValueError as e:
    sys.exit(f"train: error: {e}")


if __name__ == "__main__":
  app.run(main)
