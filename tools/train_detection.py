"""Trains a RetinaNet detector on an ACT / SACT ResNet backbone.

Offline quick start (digit scenes, a few minutes on 2 CPU cores):

  python tools/train_detection.py --config=detection_digits_sact \
      --train_log_dir=runs/det_sact

COCO 2017 from its own files (or `--tfds_data_dir` with `coco/2017`
prepared); a ResNet-101 backbone needs a GPU:

  python tools/train_detection.py --dataset=coco --model=101 \
      --base_channels=64 --model_type=sact --tau=0.005 \
      --coco_annotations=coco/annotations/instances_train2017.json \
      --coco_images=coco/train2017 \
      --eval_coco_annotations=coco/annotations/instances_val2017.json \
      --eval_coco_images=coco/val2017 --train_log_dir=runs/det_coco

Settings come from the flags given, then the `--config` preset
(`configs/<name>.json` or a path), then `detection_run.DEFAULTS`. The run
directory gets `config.json` and checkpoints; re-running the command
resumes from the latest checkpoint. TensorBoard summaries (losses, learning
rate, backbone FLOPs and ponder costs of a fixed batch, SACT ponder cost
maps) go to the run directory every `--save_summaries_secs`; `--strategy`
distributes training as in tools/train.py. `--finetune_path` initialises the
backbone (halting included when present) from a classification run, a
`.keras` file or an original release checkpoint. Without
`--noeval_after_training` the final checkpoint is evaluated
(`<train_log_dir>/eval/results.json`).
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import os
import sys

from absl import app
from absl import flags

from sact_tf.training import detection_run
from sact_tf.training import loop
from sact_tf.training import run_config
from sact_tf.training import strategies

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "A preset: a name in configs/ "
                    "(detection_digits_sact, ...) or a JSON file.")
flags.DEFINE_string("train_log_dir", None,
                    "Directory for checkpoints, summaries and config.json.")
flags.DEFINE_string("dataset", None,
                    "digit_scenes (default; offline) or coco (COCO 2017: "
                    "--coco_annotations and --coco_images, or "
                    "--tfds_data_dir).")
flags.DEFINE_integer("image_size", None,
                     "Input size S: images are fitted into S x S (aspect "
                     "ratio kept, padded). Default: 64 digit_scenes, 512 "
                     "coco.")
flags.DEFINE_string("coco_annotations", None,
                    "COCO's training annotation file "
                    "(annotations/instances_train2017.json).")
flags.DEFINE_string("coco_images", None,
                    "COCO's training image folder (train2017).")
flags.DEFINE_string("eval_coco_annotations", None,
                    "COCO's evaluation annotation file "
                    "(annotations/instances_val2017.json).")
flags.DEFINE_string("eval_coco_images", None,
                    "COCO's evaluation image folder (val2017).")
flags.DEFINE_string("tfds_data_dir", None,
                    "tensorflow-datasets' data directory with coco/2017 "
                    "prepared (without --coco_annotations; nothing is "
                    "downloaded).")
flags.DEFINE_string("model_type", None,
                    "vanilla (default), act, act_early_stopping or sact.")
flags.DEFINE_string("model", None,
                    "Units per block of the ImageNet ResNet: '101', "
                    "'3_4_23_3', ... Default: 1_1_1_1.")
flags.DEFINE_integer("base_channels", None, "Width of block 1. Default: 16.")
flags.DEFINE_float("tau", None, "Ponder cost weight. Default: 0.01.")
flags.DEFINE_float("eps", None, "Halting threshold 1 - eps. Default: 0.01.")
flags.DEFINE_string("execution", None, "dense (default) or sparse.")
flags.DEFINE_float("weight_decay", None, "L2 weight decay. Default: 1e-4.")
flags.DEFINE_integer("min_level", None, "Lowest pyramid level. Default: 3.")
flags.DEFINE_integer("max_level", None, "Highest pyramid level. Default: 5.")
flags.DEFINE_float("anchor_size", None,
                   "Anchor side / stride. Default: 2 (16 px on P3).")
flags.DEFINE_integer("head_conv_layers", None,
                     "3x3 convolutions per prediction head. Default: 2.")
flags.DEFINE_bool("fpn_batch_norm", None,
                  "Batch norm in the feature pyramid. Default: True.")
flags.DEFINE_integer("batch_size", None, "Batch size. Default: 16.")
flags.DEFINE_integer("max_number_of_steps", None,
                     "Training steps. Default: 1000.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate. Default: 1e-3.")
flags.DEFINE_bool("flip", None, "Random left-right flips. Default: False.")
flags.DEFINE_string("finetune_path", None,
                    "Backbone initial weights: a classification run "
                    "directory, .keras file or original checkpoint.")
flags.DEFINE_integer("checkpoint_every", None,
                     "Steps between checkpoints. Default: 100.")
flags.DEFINE_integer("seed", None, "Seed. Default: 0.")
flags.DEFINE_string("strategy", None,
                    "default, one_device, mirrored, multi_worker_mirrored "
                    "(cluster in TF_CONFIG) or tpu.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
flags.DEFINE_integer("save_summaries_secs", 30,
                     "Seconds between TensorBoard summaries.")
flags.DEFINE_bool("eval_after_training", True,
                  "Evaluate the final checkpoint.")
flags.mark_flag_as_required("train_log_dir")


def main(argv):
  del argv
  try:
    settings = run_config.settings_from_flags(FLAGS, detection_run.DEFAULTS)
    # First: MultiWorkerMirroredStrategy must exist before TF's runtime.
    strategy = strategies.make_strategy(
        settings.get("strategy") or detection_run.DEFAULTS["strategy"],
        FLAGS.tpu)
    config = detection_run.make_config(settings)
    detector, step = detection_run.train(config, FLAGS.train_log_dir,
                                         strategy, FLAGS.save_summaries_secs)
    print(f"Trained to step {step} in {FLAGS.train_log_dir}")
    if FLAGS.eval_after_training and loop.is_chief(strategy):
      results, _ = detection_run.evaluate(detector, config)
      detection_run.write_results(
          os.path.join(FLAGS.train_log_dir, "eval"), results)
      print(detection_run.format_results(results))
  except ValueError as e:
    sys.exit(f"train_detection: error: {e}")


if __name__ == "__main__":
  app.run(main)
