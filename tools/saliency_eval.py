"""Ponder cost maps as a saliency model: the paper's CAT2000 evaluation with
the MIT saliency benchmark's metrics (see docs/saliency.md).

Every image of `--data_dir` (CAT2000's layout: `Stimuli/<category>/NNN.jpg`,
`FIXATIONMAPS/<category>/NNN.jpg`, `FIXATIONLOCS/<category>/NNN.mat`) is fed
whole to the model, as `tools/ponder_map.py` feeds photos; its ponder cost
map (blurred, optionally mixed with a centre prior) and three baselines
(the centre-bias Gaussian, a uniform map, the last block's feature norm)
are scored against the human fixations: AUC-Judd, AUC-Borji, shuffled AUC,
NSS, CC, similarity, KL divergence and EMD. Prints the overall table and
writes `<output_dir>/saliency_metrics.json` (overall, per category, per
image), `saliency_metrics.md` and `saliency_examples.png` (image, human
fixation map, ponder cost map). All inputs are checked before any is
scored. Example:

  python tools/saliency_eval.py --checkpoint_dir=models/imagenet_101_sact \
      --data_dir=CAT2000/trainSet --output_dir=saliency --image_size=512

Offline, `--write_cluttered_digits=N` first writes the first N test canvases
of the offline default data to `--data_dir` in this layout, with fixations
drawn inside each digit's box:

  python tools/saliency_eval.py --checkpoint_dir=runs/digits_sact \
      --data_dir=runs/digits_cat2000 --write_cluttered_digits=728 \
      --output_dir=runs/digits_sact/saliency --emd_downsize=4
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import json
import os
import sys

from absl import app
from absl import flags

from sact_tf.saliency import cat2000
from sact_tf.saliency import distribution
from sact_tf.saliency import evaluation
from sact_tf.utils import files

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None,
                    "A run directory of tools/train.py, one of its "
                    "checkpoints, a .keras file, or a checkpoint of the "
                    "original release (a SACT model).")
flags.DEFINE_string("data_dir", None,
                    "A directory in CAT2000's layout (Stimuli/, "
                    "FIXATIONMAPS/, FIXATIONLOCS/).")
flags.DEFINE_string("output_dir", None,
                    "The directory to write the results to (created if "
                    "needed; earlier results are replaced).")
flags.DEFINE_integer("image_size", 0,
                     "Resize the images so that the longer edge has this "
                     "many pixels; 0 (the default) keeps their size.")
flags.DEFINE_float("blur_sigma", 0.02,
                   "Gaussian blur of the network maps, its standard "
                   "deviation as a fraction of the image's longer side; "
                   "0: none.")
flags.DEFINE_float("center_prior_weight", 0.0,
                   "Mix the network maps (min-max normalised) with the "
                   "centre prior: (1 - w) map + w prior; 0: none.")
flags.DEFINE_float("center_sigma", 0.25,
                   "The centre prior's standard deviation along each axis, "
                   "as a fraction of that axis.")
flags.DEFINE_integer("num_splits", 100,
                     "Random splits of AUC-Borji and shuffled AUC.")
flags.DEFINE_float("step_size", 0.1,
                   "Threshold step of AUC-Borji and shuffled AUC.")
flags.DEFINE_integer("num_other_images", evaluation.NUM_OTHER_IMAGES,
                     "Images whose fixations are shuffled AUC's negatives.")
flags.DEFINE_integer("emd_downsize", distribution.EMD_DOWNSIZE,
                     "EMD compares the maps shrunk by this factor; 0 leaves "
                     "EMD out (its cost grows with the cube of the pixels).")
flags.DEFINE_integer("seed", 0, "Seed of the random splits.")
flags.DEFINE_integer("num_examples", 4,
                     "Examples drawn in saliency_examples.png.")
flags.DEFINE_integer("write_cluttered_digits", 0,
                     "First write this many test canvases of the offline "
                     "default data to --data_dir (which must not exist) in "
                     "CAT2000's layout, fixations inside the digit's box.")
flags.DEFINE_bool("use_ema", None,
                  "Use the moving averages of the weights; default: what "
                  "the run evaluates.")
flags.mark_flags_as_required(["checkpoint_dir", "data_dir", "output_dir"])

OUTPUTS = ("saliency_metrics.json", "saliency_metrics.md",
           "saliency_examples.png")


def _write_digits(directory, num_images):
  if os.path.exists(directory):
    raise ValueError(f"--data_dir={directory} already exists; "
                     f"--write_cluttered_digits writes a new directory")
  with files.atomic_output(directory, is_dir=True) as tmp:
    cat2000.write_cluttered_digits(tmp, num_images)
  print(f"Wrote {num_images} cluttered digits to {directory}")


def main(argv):
  del argv
  try:
    if FLAGS.num_examples < 1:
      raise ValueError(f"--num_examples must be positive, received "
                       f"{FLAGS.num_examples}")
    if FLAGS.write_cluttered_digits:
      _write_digits(FLAGS.data_dir, FLAGS.write_cluttered_digits)
    stimuli = cat2000.find_stimuli(FLAGS.data_dir)
    model, family = evaluation.load_model(FLAGS.checkpoint_dir,
                                          FLAGS.use_ema)
    settings = {name: FLAGS[name].value for name in (
        "image_size", "blur_sigma", "center_prior_weight", "center_sigma",
        "num_splits", "step_size", "num_other_images", "emd_downsize",
        "seed")}
    results = evaluation.evaluate(model, family, stimuli,
                                  num_examples=FLAGS.num_examples,
                                  log=print, **settings)
    summary = evaluation.summarize(results["per_image"])
    table = evaluation.markdown(summary)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    paths = [os.path.join(FLAGS.output_dir, name) for name in OUTPUTS]
    record = dict(summary, checkpoint=FLAGS.checkpoint_dir,
                  data_dir=FLAGS.data_dir, settings=settings,
                  per_image=results["per_image"])
    evaluation.draw_examples(results["examples"], paths[2])
    with files.atomic_output(paths[1], overwrite=True) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(table)
    with files.atomic_output(paths[0], overwrite=True) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    print(table)
    print("Wrote " + ", ".join(paths))
  except ValueError as e:
    sys.exit(f"saliency_eval: error: {e}")


if __name__ == "__main__":
  app.run(main)
