"""Ponder cost maps as a saliency model, scored as the MIT benchmark scores
(`tools/saliency_eval.py`).

For every stimulus of a CAT2000-layout directory the model sees the whole
image (longer side `image_size`, as `tools/ponder_map.py`), and four maps
are scored against the human fixations with every metric:

* `ponder_cost`: the SACT ponder cost map (summed over blocks), blurred
  (`maps.blur`), optionally mixed with the centre prior
  (`maps.combine_center_prior`), and min-max normalised to [0, 1];
* `feature_norm`: the same post-processing of the L2 norm over channels of
  the last block's output, nearest-neighbour upsampled as the ponder cost
  map is: does halting add anything over the features?
* `center_prior`: the centre-bias Gaussian (`maps.center_prior`);
* `uniform`: a constant map (chance: 0.5 in every AUC; NSS, CC and
  similarity are undefined for it).

Every map is resized to its fixation map's size (`maps.resize`) before it
is scored. A metric that is undefined for a map (a constant map: NSS, CC,
similarity) is recorded as None and left out of the means, which count
only the images where it is defined.
"""


import matplotlib

matplotlib.use("agg")  # No display needed.
# pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import pyplot as plt
import numpy as np
import tensorflow as tf

from sact_tf import models
from sact_tf.models.adaptive_resnet import upsample_nearest
from sact_tf.saliency import cat2000
from sact_tf.saliency import distribution
from sact_tf.saliency import location
from sact_tf.saliency import maps
from sact_tf.training import checkpoint_io
from sact_tf.utils import checks
from sact_tf.utils import files
from sact_tf.viz import photos

METRICS = ("auc_judd", "auc_borji", "shuffled_auc", "nss", "cc",
           "similarity", "kl_divergence", "emd")
METHODS = ("ponder_cost", "feature_norm", "center_prior", "uniform")
# Borji et al. take the fixations of 10 other images as shuffled AUC's
# negatives.
NUM_OTHER_IMAGES = 10


def load_model(path, use_ema=None):
  """A SACT model for whole images, and its family.

  Args:
    path: str. A `.keras` file, or what `checkpoint_io.restore_model`
      restores (a run directory of `tools/train.py`, one of its
      checkpoints, an original release checkpoint), with sparse execution
      as `tools/ponder_map.py`.
    use_ema: bool or None, see `checkpoint_io.restore_model`; not for
      `.keras` files.

  Returns:
    `(model, family)`.
  """
  if not path.endswith(".keras"):
    model, config = checkpoint_io.restore_model(path, use_ema,
                                                execution="sparse")
    return model, config["family"]
  if use_ema is not None:
    raise ValueError(f"a .keras file holds one set of weights; received "
                     f"use_ema={use_ema!r} with {path}")
  model = checkpoint_io.load_keras_model(path)
  return model, "cifar" if isinstance(model, models.CifarResNet) else (
      "imagenet")


def network_maps(model, photo, family):
  """The ponder cost map and the last block's feature norm of one photo.

  Args:
    model: a SACT model.
    photo: uint8 `[H, W, 3]`.
    family: str, the model's family.

  Returns:
    dict of float32 `[H, W]`: `ponder_cost`, `feature_norm`.
  """
  end_points = photos.photo_end_points(model, photo, family)
  ponder_cost = end_points["ponder_cost_map"][0, :, :, 0]
  features = end_points[f"{model.blocks[-1].name}/outputs"]
  norm = tf.norm(tf.cast(features, tf.float32), axis=-1)
  norm = upsample_nearest(norm, tf.shape(ponder_cost))[0]
  return {"ponder_cost": ponder_cost.numpy(), "feature_norm": norm.numpy()}


def prediction_maps(model_maps, blur_sigma, center_prior_weight,
                    center_sigma):
  """The four scored maps (see the module docstring), at the photo's size.

  Every map but the uniform one is min-max normalised to [0, 1], as maps
  submitted to the benchmark (8-bit images) are; this matters to KL
  divergence and EMD, which see the map's offset: every SACT block runs at
  least one unit everywhere, so a raw ponder cost map sits far above 0.

  Args:
    model_maps: dict of `[H, W]` maps of `network_maps`.
    blur_sigma: float >= 0, see `maps.blur`.
    center_prior_weight: float in [0, 1], see `maps.combine_center_prior`.
    center_sigma: float > 0, see `maps.center_prior`.

  Returns:
    dict, `METHODS` to float64 `[H, W]`.
  """
  predictions = {
      name: maps.normalize_range(maps.combine_center_prior(
          maps.blur(value, blur_sigma), center_prior_weight, center_sigma))
      for name, value in model_maps.items()}
  shape = model_maps["ponder_cost"].shape
  predictions["center_prior"] = maps.normalize_range(
      maps.center_prior(shape, center_sigma))
  predictions["uniform"] = np.ones(shape)
  return predictions


def _defined(metric, *args, **kwargs):
  """The metric's value, or None where it is undefined for the map."""
  try:
    return metric(*args, **kwargs)
  except ValueError:
    return None


def score_map(prediction, fixations, density, other_fixations, num_splits,
              step_size, seed, emd_downsize):
  """Every metric of one map (resized to the fixations' size).

  Args:
    prediction: float `[h, w]`.
    fixations: bool `[H, W]`.
    density: float `[H, W]`.
    other_fixations: bool `[H, W]` or None (no other image: shuffled AUC
      is None).
    num_splits, step_size, seed: of AUC-Borji and shuffled AUC.
    emd_downsize: int; 0 leaves EMD out.

  Returns:
    dict, metric name to float or None (undefined for this map).
  """
  prediction = maps.resize(prediction, fixations.shape)
  splits = {"num_splits": num_splits, "step_size": step_size, "seed": seed}
  scores = {
      "auc_judd": _defined(location.auc_judd, prediction, fixations),
      "auc_borji": _defined(location.auc_borji, prediction, fixations,
                            **splits),
      "shuffled_auc": None if other_fixations is None else _defined(
          location.shuffled_auc, prediction, fixations, other_fixations,
          **splits),
      "nss": _defined(location.nss, prediction, fixations),
      "cc": _defined(distribution.cc, prediction, density),
      "similarity": _defined(distribution.similarity, prediction, density),
      "kl_divergence": _defined(distribution.kl_divergence, prediction,
                                density),
  }
  if emd_downsize:
    scores["emd"] = _defined(distribution.emd, prediction, density,
                             emd_downsize)
  return scores


def _other_fixations(locations, index, rng, num_other_images):
  """The union of the fixations of other images, scaled to image `index`.

  Args:
    locations: list of `(rows, cols, shape)` of every image.
    index: int, the image scored.
    rng: `numpy.random.Generator`, which picks the other images.
    num_other_images: int.

  Returns:
    bool `[H, W]` of image `index`, or None if there is no other image.
  """
  others = [j for j in range(len(locations)) if j != index]
  if not others:
    return None
  shape = locations[index][2]
  union = np.zeros(shape, bool)
  for j in rng.choice(others, min(num_other_images, len(others)),
                      replace=False):
    rows, cols, other_shape = locations[j]
    union[rows * shape[0] // other_shape[0],
          cols * shape[1] // other_shape[1]] = True
  return union


def _check_settings(image_size, blur_sigma, center_prior_weight,
                    center_sigma, num_splits, step_size, num_other_images,
                    emd_downsize, num_examples):
  """Raises ValueError, naming the value, for a bad setting of `evaluate`."""
  for name, value, valid, meaning in (
      ("blur_sigma", blur_sigma, lambda v: v >= 0, ">= 0"),
      ("center_prior_weight", center_prior_weight, lambda v: 0 <= v <= 1,
       "in [0, 1]"),
      ("center_sigma", center_sigma, lambda v: v > 0, "> 0"),
      ("step_size", step_size, lambda v: 0 < v <= 1, "in (0, 1]")):
    if isinstance(value, bool) or not isinstance(
        value, (int, float)) or not valid(value):
      raise ValueError(f"{name} must be {meaning}, received "
                       f"{name}={value!r}")
  checks.check_int("num_splits", num_splits)
  for name, value in (("image_size", image_size),
                      ("num_other_images", num_other_images),
                      ("emd_downsize", emd_downsize),
                      ("num_examples", num_examples)):
    checks.check_int(name, value, minimum=0)
  if num_other_images == 0:
    raise ValueError("num_other_images must be >= 1 (shuffled AUC's "
                     "negatives), received num_other_images=0")


def read_ground_truth(stimuli, image_size=0):
  """Reads and checks every stimulus before any is scored.

  Args:
    stimuli: list of `cat2000.Stimulus`.
    image_size: int, see `photos.load_photo`.

  Returns:
    list of `(rows, cols, shape)`: the fixated pixels of each stimulus.

  Raises:
    ValueError: (one line, naming the file) an unreadable image, fixation
      file or fixation map.
  """
  locations = []
  for stimulus in stimuli:
    photos.load_photo(stimulus.image_path, image_size)
    fixated = cat2000.read_fixation_locations(
        stimulus.fixation_locations_path)
    cat2000.read_fixation_map(stimulus.fixation_map_path, fixated.shape)
    rows, cols = np.nonzero(fixated)
    locations.append((rows, cols, fixated.shape))
  return locations


def evaluate(model, family, stimuli, image_size=0, blur_sigma=0.02,
             center_prior_weight=0.0, center_sigma=0.25, num_splits=100,
             step_size=0.1, num_other_images=NUM_OTHER_IMAGES,
             emd_downsize=distribution.EMD_DOWNSIZE, seed=0, num_examples=4,
             log=None):
  """Scores the ponder cost maps and the baselines of every stimulus.

  Args:
    model: a SACT model; family: its family.
    stimuli: list of `cat2000.Stimulus` (`cat2000.find_stimuli`).
    image_size: int, the longer side the model sees; 0 keeps the image's
      size. Defaults to 0.
    blur_sigma, center_prior_weight, center_sigma: the post-processing
      (see `prediction_maps`). Default to 0.02, 0 (no centre prior), 0.25.
    num_splits, step_size: of AUC-Borji and shuffled AUC. Default to 100,
      0.1 (the benchmark's).
    num_other_images: int, the images whose fixations are shuffled AUC's
      negatives. Defaults to 10.
    emd_downsize: int, EMD's shrinking factor; 0 leaves EMD out. Defaults
      to 32 (the benchmark's).
    seed: int, seed of the random splits and of the other images' choice.
      Defaults to 0.
    num_examples: int, the first stimuli kept for `draw_examples`.
    log: callable taking a str, or None.

  Returns:
    dict: `per_image` (list of dicts with `category`, `name`, `scores`
    (method to metric to float or None)) and `examples` (list of dicts with
    `name`, `image`, `density`, `ponder_cost`).
  """
  _check_settings(image_size, blur_sigma, center_prior_weight, center_sigma,
                  num_splits, step_size, num_other_images, emd_downsize,
                  num_examples)
  if not stimuli:
    raise ValueError("evaluate received no stimuli")
  locations = read_ground_truth(stimuli, image_size)
  rng = np.random.default_rng(seed)
  per_image, examples = [], []
  for index, stimulus in enumerate(stimuli):
    if log:
      log(f"Scoring {stimulus.image_path}")
    rows, cols, shape = locations[index]
    fixations = np.zeros(shape, bool)
    fixations[rows, cols] = True
    density = cat2000.read_fixation_map(stimulus.fixation_map_path, shape)
    photo = photos.load_photo(stimulus.image_path, image_size)
    predictions = prediction_maps(network_maps(model, photo, family),
                                  blur_sigma, center_prior_weight,
                                  center_sigma)
    others = _other_fixations(locations, index, rng, num_other_images)
    per_image.append({
        "category": stimulus.category, "name": stimulus.name,
        "scores": {method: score_map(
            predictions[method], fixations, density, others, num_splits,
            step_size, seed, emd_downsize) for method in METHODS}})
    if index < num_examples:
      examples.append({"name": f"{stimulus.category}/{stimulus.name}",
                       "image": photo, "density": density,
                       "ponder_cost": predictions["ponder_cost"]})
  return {"per_image": per_image, "examples": examples}


def _means(rows):
  """Method to metric to the mean over the defined values (or None)."""
  means = {}
  for method in METHODS:
    means[method] = {}
    for metric in rows[0]["scores"][method]:
      values = [r["scores"][method][metric] for r in rows
                if r["scores"][method][metric] is not None]
      means[method][metric] = float(np.mean(values)) if values else None
  return means


def summarize(per_image):
  """Means overall and per category, and the counts of undefined scores.

  Args:
    per_image: the `per_image` list of `evaluate`.

  Returns:
    dict: `num_images`, `overall` and `per_category` (category to) method
    to metric to mean (None where undefined for every image), `undefined`
    method to metric to the number of images where it is undefined (only
    non-zero counts).
  """
  if not per_image:
    raise ValueError("summarize received no images")
  categories = sorted({row["category"] for row in per_image})
  undefined = {}
  for method in METHODS:
    for metric in per_image[0]["scores"][method]:
      count = sum(r["scores"][method][metric] is None for r in per_image)
      if count:
        undefined.setdefault(method, {})[metric] = count
  return {
      "num_images": len(per_image),
      "overall": _means(per_image),
      "per_category": {c: _means([r for r in per_image
                                  if r["category"] == c])
                       for c in categories},
      "undefined": undefined,
  }


def _table(means):
  metrics = list(means[METHODS[0]])
  lines = ["| map | " + " | ".join(metrics) + " |",
           "|---" * (len(metrics) + 1) + "|"]
  for method in METHODS:
    cells = ["n/a" if means[method][m] is None else f"{means[method][m]:.4f}"
             for m in metrics]
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  return lines


def markdown(summary):
  """The summary as markdown: the overall table, then one per category."""
  lines = [f"Saliency metrics over {summary['num_images']} images "
           f"(AUCs, NSS, CC, similarity: higher is better; KL divergence, "
           f"EMD: lower is better; n/a: undefined for a constant map).", ""]
  lines += _table(summary["overall"])
  for category, means in summary["per_category"].items():
    lines += ["", f"### {category}", ""] + _table(means)
  if summary["undefined"]:
    lines += ["", "Images left out of a mean (the metric is undefined for "
              "their map): " + "; ".join(
                  f"{method} {metric} {count}"
                  for method, counts in summary["undefined"].items()
                  for metric, count in counts.items()) + "."]
  return "\n".join(lines) + "\n"


def draw_examples(examples, path):
  """A figure of examples: image, human fixation map, ponder cost map.

  One row per example; the ponder cost map is the post-processed map that
  was scored, in viridis from its minimum to its maximum. Written
  atomically (PNG).

  Args:
    examples: the `examples` list of `evaluate` (not empty).
    path: str.
  """
  if not examples:
    raise ValueError("draw_examples received no examples")
  fig, axes = plt.subplots(len(examples), 3, squeeze=False,
                           figsize=(7.5, 2.2 * len(examples)))
  titles = ("image", "human fixation map", "ponder cost map")
  for index, (row, example) in enumerate(zip(axes, examples)):
    row[0].imshow(example["image"])
    row[0].set_ylabel(example["name"], fontsize=8)
    row[1].imshow(example["density"], cmap="gray")
    row[2].imshow(example["ponder_cost"], cmap="viridis")
    for ax, title in zip(row, titles):
      ax.set_xticks([])
      ax.set_yticks([])
      if index == 0:
        ax.set_title(title, fontsize=9)
  try:
    with files.atomic_output(path, overwrite=True) as tmp:
      fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
  finally:
    plt.close(fig)
