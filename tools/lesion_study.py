"""Lesion study of a trained vanilla ResNet, and the LesionResNet baseline.

Veit et al. 2016's experiments (arXiv 1605.06431) on a checkpoint: the test
error with each single unit deleted, against the number of units deleted at
random (mean and std over `--num_draws` draws) and against the number of
random swaps of two units of a block; and LesionResNet: for each FLOPs
budget of `--budgets`, the network left by greedily deleting the unit whose
deletion costs least accuracy on `--selection_examples` examples held out
of training (never the test split), evaluated on the test split. A run
trained with `--split_name=train[:-N]` holds out `train[-N:]`, the default
selection split; a run trained on all of `train` is chosen on training
examples, with a warning.

  python tools/lesion_study.py --checkpoint_dir=runs/vanilla_s1 \\
      --output_dir=runs/vanilla_s1/lesion --num_draws=5

writes `<output_dir>/lesion_study.json` and one PNG per experiment
(`single_deletion.png`, `random_deletion.png`, `reordering.png`,
`lesion_resnet.png`), all at once when everything has run.
`tools/tradeoff.py` reads the directory for its FLOPs-accuracy chart.
`--checkpoint_dir` is loaded as `tools/evaluate.py` loads it (a run
directory or checkpoint prefix, or an original release checkpoint), or is a
`.keras` file (its data then comes from `--dataset` and `--image_size`).
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from sact_tf.data import datasets
from sact_tf.models.cifar_resnet import CifarResNet
from sact_tf.training import checkpoint_io
from sact_tf.training import lesion_study
from sact_tf.training import run_config
from sact_tf.utils import files
from sact_tf.viz import tradeoff_charts

EXPERIMENTS = ("single", "random", "reorder", "lesion_resnet")
STUDY_FILE = "lesion_study.json"

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "Run directory of tools/train.py (or a checkpoint prefix "
                    "in it), an original release checkpoint, or a .keras "
                    "file.")
flags.DEFINE_string("output_dir", None,
                    "Directory written with the JSON and PNGs (must not "
                    "exist, unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
flags.DEFINE_integer("num_draws", 5,
                     "Random draws per number of units deleted or swapped.")
flags.DEFINE_list("experiments", list(EXPERIMENTS),
                  f"Which of {', '.join(EXPERIMENTS)} to run.")
flags.DEFINE_list("budgets", ["0.9", "0.8", "0.7", "0.6"],
                  "LesionResNet FLOPs budgets, fractions of the network's.")
flags.DEFINE_integer("seed", 0, "Seed of the random deletions and swaps.")
flags.DEFINE_string("split_name", None,
                    "Evaluation split. Default: the run's (test).")
flags.DEFINE_integer("num_examples", None,
                     "Evaluate the first examples only. Default: all.")
flags.DEFINE_string("selection_split", None,
                    "Split LesionResNet chooses its deletions on. Default: "
                    "the examples the run held out of training (a run "
                    "trained with --split_name=train[:-N] holds out "
                    "train[-N:]), else the run's training split.")
flags.DEFINE_integer("selection_examples", 1000,
                     "Examples of --selection_split used for the choice.")
flags.DEFINE_integer("batch_size", 100, "Evaluation batch size.")
flags.DEFINE_string("dataset_dir", None,
                    "The original's TF-Slim TFRecords. Default: the run's "
                    "data.")
flags.DEFINE_string("dataset", None,
                    "Dataset of a .keras model. Default: the run's; "
                    "cluttered_digits for a .keras file.")
flags.DEFINE_integer("image_size", None,
                     "Input size. Default: the run's (the dataset's).")
flags.DEFINE_enum("use_ema", None, ["true", "false"],
                  "Evaluate the moving averages of the weights. Default: "
                  "as the run's configuration.")
flags.mark_flags_as_required(["checkpoint_dir", "output_dir"])


def load(path, use_ema):
  """`(model, config)` of a run, original checkpoint or .keras file."""
  if path.endswith(".keras"):
    if not os.path.isfile(path):
      raise ValueError(f"--checkpoint_dir {path!r} does not exist")
    model = checkpoint_io.load_keras_model(path)
    family = "cifar" if isinstance(model, CifarResNet) else "imagenet"
    return model, {"family": family, "checkpoint": path,
                   "model_kwargs": run_config.model_kwargs(model),
                   "dataset": "cluttered_digits", "image_size": None}
  return checkpoint_io.restore_model(path, use_ema=use_ema)


def examples(config, split, num_examples):
  """`(images, labels)` numpy arrays of a split, preprocessed for eval."""
  name = FLAGS.dataset or config["dataset"]
  dataset_dir = FLAGS.dataset_dir or config.get("dataset_dir")
  datasets.check(name, split, dataset_dir, config.get("tfds_data_dir"),
                 config.get("tfds_manual_dir"))
  input_fn = datasets.make_input_fn(
      name, split, FLAGS.batch_size, training=False,
      image_size=image_size(config), num_examples=num_examples,
      dataset_dir=dataset_dir, tfds_data_dir=config.get("tfds_data_dir"),
      tfds_manual_dir=config.get("tfds_manual_dir"))
  batches = list(input_fn().as_numpy_iterator())
  return (np.concatenate([b["images"] for b in batches]),
          np.concatenate([b["labels"] for b in batches]))


def image_size(config):
  name = FLAGS.dataset or config["dataset"]
  return FLAGS.image_size or config.get("image_size") or datasets.info(
      name)["image_size"]


def check_flags():
  unknown = set(FLAGS.experiments) - set(EXPERIMENTS)
  if unknown:
    raise ValueError(f"--experiments must be among {', '.join(EXPERIMENTS)}, "
                     f"received {sorted(unknown)}")
  for name in ("num_draws", "batch_size", "selection_examples",
               "num_examples"):
    value = FLAGS[name].value
    if value is not None and value < 1:
      raise ValueError(f"--{name} must be positive, received {value}")
  try:
    budgets = [float(b) for b in FLAGS.budgets]
  except ValueError as e:
    raise ValueError(f"--budgets must be numbers, received "
                     f"{FLAGS.budgets}") from e
  files.check_writable_output(FLAGS.output_dir, FLAGS.overwrite)
  return budgets


def run_study(model, config, budgets):
  """Runs the chosen experiments; returns the study dict."""
  rng = np.random.default_rng(FLAGS.seed)
  split = FLAGS.split_name or config.get("eval_split") or datasets.info(
      FLAGS.dataset or config["dataset"])["eval_split"]
  evaluate = lesion_study.ArrayEvaluation(
      *examples(config, split, FLAGS.num_examples), FLAGS.batch_size)
  study = {"checkpoint": config["checkpoint"],
           "family": config["family"], "model_kwargs": config["model_kwargs"],
           "seed": config.get("seed"), "split": split,
           "num_examples": len(evaluate.labels), "full": evaluate(model)}
  if "single" in FLAGS.experiments:
    study["single_deletion"] = lesion_study.single_deletions(model, evaluate)
  if "random" in FLAGS.experiments:
    study["random_deletion"] = lesion_study.random_deletions(
        model, evaluate, FLAGS.num_draws, rng)
  if "reorder" in FLAGS.experiments:
    study["reordering"] = lesion_study.random_reorderings(
        model, evaluate, FLAGS.num_draws, rng)
  if "lesion_resnet" in FLAGS.experiments:
    train_split = config.get("train_split", "train")
    selection_split = (FLAGS.selection_split or
                       datasets.complement_split(train_split) or train_split)
    if selection_split == train_split:
      logging.warning("LesionResNet chooses its deletions on %r, examples "
                      "the network was trained on; train with "
                      "--split_name=train[:-N] to hold N out", train_split)
    if selection_split == split:
      raise ValueError(f"--selection_split must not be the evaluation split "
                       f"{split!r}")
    select = lesion_study.ArrayEvaluation(
        *examples(config, selection_split, FLAGS.selection_examples),
        FLAGS.batch_size)
    study["lesion_resnet"] = dict(
        lesion_study.lesion_resnet(model, select, evaluate, budgets,
                                   image_size(config)),
        selection_split=selection_split,
        selection_held_out=selection_split != train_split,
        selection_examples=len(select.labels))
  return study


def main(argv):
  del argv
  try:
    budgets = check_flags()
    use_ema = None if FLAGS.use_ema is None else FLAGS.use_ema == "true"
    model, config = load(FLAGS.checkpoint_dir, use_ema)
    if model.model_type != "vanilla":
      raise ValueError(f"the lesion study needs a vanilla model, "
                       f"{FLAGS.checkpoint_dir} has model_type="
                       f"{model.model_type!r}")
    study = run_study(model, config, budgets)
    with files.atomic_output(FLAGS.output_dir, FLAGS.overwrite,
                             is_dir=True) as tmp:
      with open(os.path.join(tmp, STUDY_FILE), "w", encoding="utf-8") as f:
        json.dump(study, f, indent=2)
        f.write("\n")
      tradeoff_charts.draw_lesion_study(study, tmp)
  except ValueError as e:
    sys.exit(f"lesion_study: error: {e}")
  print(f"Wrote {FLAGS.output_dir}: full network error "
        f"{study['full']['error']:.4f}")


if __name__ == "__main__":
  app.run(main)
