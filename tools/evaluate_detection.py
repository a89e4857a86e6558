"""Evaluates a detection run: COCO AP, backbone FLOPs, ponder cost on objects.

  python tools/evaluate_detection.py --checkpoint_dir=runs/det_sact \
      --eval_dir=runs/det_sact/eval --evaluate_once
  python tools/evaluate_detection.py --checkpoint_dir=runs/det_coco \
      --coco_annotations=annotations/instances_val2017.json \
      --coco_images=val2017 --evaluate_once

Prints COCO AP, AP50, AP75, AP small / medium / large (pycocotools; -1:
no ground-truth object of that size), the backbone's FLOPs per image
(mean, std, share of the same ResNet without halting) and, for SACT, the
mean ponder cost inside the ground-truth boxes and outside; writes them to
`<eval_dir>/results.json` and draws detections over the ponder cost map
(`<eval_dir>/detections.png`). Without `--evaluate_once`, evaluates each
new checkpoint of a run in progress until its last step.
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import os
import sys
import time

from absl import app
from absl import flags

from sact_tf.training import checkpoint_io
from sact_tf.training import detection_run
from sact_tf.viz import detections as detection_pictures

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "Run directory of tools/train_detection.py, or one of "
                    "its checkpoint prefixes.")
flags.DEFINE_string("eval_dir", None,
                    "Output directory. Default: <checkpoint_dir>/eval.")
flags.DEFINE_bool("evaluate_once", False,
                  "Evaluate the latest checkpoint and exit.")
flags.DEFINE_integer("eval_interval_secs", 60,
                     "Seconds between looks for a new checkpoint.")
flags.DEFINE_string("split_name", "test", "Split to evaluate.")
flags.DEFINE_integer("num_examples", None,
                     "Evaluate the first N images. Default: all.")
flags.DEFINE_integer("batch_size", 50, "Evaluation batch size.")
flags.DEFINE_enum("execution", None, ["dense", "sparse"],
                  "Backbone execution. Default: the run's.")
flags.DEFINE_integer("num_pictures", 8, "Images drawn; 0: none.")
flags.DEFINE_string("coco_annotations", None,
                    "COCO runs: the annotation file of the split evaluated "
                    "(instances_val2017.json). Default: the run's.")
flags.DEFINE_string("coco_images", None,
                    "COCO runs: its image folder (val2017). Default: the "
                    "run's.")
flags.DEFINE_string("tfds_data_dir", None,
                    "COCO runs: tensorflow-datasets' data directory with "
                    "coco/2017 prepared. Default: the run's.")
flags.mark_flag_as_required("checkpoint_dir")


def evaluate(prefix, eval_dir):
  detector, config = detection_run.restore(prefix, FLAGS.execution)
  config = detection_run.with_data(config, FLAGS.split_name,
                                   FLAGS.coco_annotations, FLAGS.coco_images,
                                   FLAGS.tfds_data_dir)
  results, outputs = detection_run.evaluate(
      detector, config, FLAGS.split_name, FLAGS.num_examples,
      FLAGS.batch_size, max(FLAGS.num_pictures, 0))
  results.update(global_step=config["global_step"],
                 checkpoint=config["checkpoint"])
  path = detection_run.write_results(eval_dir, results)
  if FLAGS.num_pictures:
    detection_pictures.draw(outputs, os.path.join(eval_dir, "detections.png"),
                            FLAGS.num_pictures)
  print(f"Step {config['global_step']} ({FLAGS.split_name}, "
        f"{results['num_examples']} images):")
  print(detection_run.format_results(results))
  print(f"Wrote {path}")
  return config


def main(argv):
  del argv
  try:
    if FLAGS.num_examples is not None and FLAGS.num_examples < 1:
      raise ValueError(f"--num_examples must be positive, received "
                       f"{FLAGS.num_examples}")
    eval_dir = FLAGS.eval_dir or os.path.join(
        FLAGS.checkpoint_dir.rstrip("/"), "eval")
    done = None
    while True:
      prefix = checkpoint_io.find_checkpoint(FLAGS.checkpoint_dir)
      if prefix != done:
        config = evaluate(prefix, eval_dir)
        done = prefix
        if (FLAGS.evaluate_once or
            config["global_step"] >= config["max_number_of_steps"]):
          return
      time.sleep(FLAGS.eval_interval_secs)
  except ValueError as e:
    sys.exit(f"evaluate_detection: error: {e}")


if __name__ == "__main__":
  app.run(main)
