"""Evaluates checkpoints: the original's `cifar_main.py --mode=eval` and
`imagenet_eval.py`.

  python tools/evaluate.py --checkpoint_dir=runs/sact_digits \
      --eval_dir=runs/sact_digits/eval --evaluate_once

prints `eval/Accuracy[0.9182]`, `Total Flops/mean[82393168]`, ... (the
original's lines), and writes them to `<eval_dir>/metrics.json` (and
`metrics-<step>.json`), TensorBoard summaries and, for SACT, the picture
`<eval_dir>/ponder_maps.png`. The model and data are those of the run's
`config.json`. Without `--evaluate_once` it then evaluates every new
checkpoint as it appears, until the run's last step.

`--checkpoint_dir` may also hold a checkpoint of the original release; its
architecture is read from the checkpoint, and `--dataset_dir` points to the
TF-Slim data (CIFAR-10 or ImageNet, as in the original's README).
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import sys

from absl import app
from absl import flags

from sact_tf.training import strategies
from sact_tf.training.evaluation_run import EvaluationRun
from sact_tf.training.figures import draw_ponder_maps

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "Run directory of tools/train.py (or a checkpoint "
                    "prefix in it), or an original release checkpoint.")
flags.DEFINE_string("eval_dir", None,
                    "Directory for the results. Default: "
                    "<checkpoint_dir>/eval.")
flags.DEFINE_bool("evaluate_once", False,
                  "Evaluate the latest checkpoint only.")
flags.DEFINE_integer("eval_interval_secs", 60,
                     "Seconds between evaluations of new checkpoints.")
flags.DEFINE_integer("eval_timeout_secs", None,
                     "Stop waiting for a new checkpoint after this many "
                     "seconds. Default: wait until the run's last step.")
flags.DEFINE_string("split_name", None,
                    "Split. Default: the dataset's test / validation split.")
flags.DEFINE_integer("num_examples", None,
                     "Evaluate the first examples only. Default: all.")
flags.DEFINE_integer("batch_size", 100, "Evaluation batch size.")
flags.DEFINE_string("dataset_dir", None,
                    "The original's TF-Slim TFRecords. Default: the run's "
                    "data.")
flags.DEFINE_enum("use_ema", None, ["true", "false"],
                  "Evaluate the moving averages of the weights. Default: "
                  "as the run's configuration (ImageNet presets: true).")
flags.DEFINE_enum("execution", None, ["dense", "sparse"],
                  "SACT execution. Default: the run's.")
flags.DEFINE_string("strategy", "default",
                    "default, one_device, mirrored or tpu.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
flags.mark_flag_as_required("checkpoint_dir")


def main(argv):
  del argv
  eval_dir = FLAGS.eval_dir or FLAGS.checkpoint_dir.rstrip("/") + "/eval"
  try:
    for name in ("num_examples", "batch_size"):
      value = FLAGS[name].value
      if value is not None and value < 1:
        raise ValueError(f"--{name} must be positive, received {value}")
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.tpu)
    run = EvaluationRun(
        FLAGS.checkpoint_dir, eval_dir, strategy, split_name=FLAGS.split_name,
        num_examples=FLAGS.num_examples, batch_size=FLAGS.batch_size,
        dataset_dir=FLAGS.dataset_dir,
        use_ema=None if FLAGS.use_ema is None else FLAGS.use_ema == "true",
        execution=FLAGS.execution, picture_fn=draw_ponder_maps)
    run.run(once=FLAGS.evaluate_once,
            eval_interval_secs=FLAGS.eval_interval_secs,
            timeout=FLAGS.eval_timeout_secs)
  except ValueError as e:
    sys.exit(f"evaluate: error: {e}")


if __name__ == "__main__":
  app.run(main)
