"""Wall-clock benchmark of sparse execution against dense and vanilla.

Times a vanilla ResNet, an adaptive ResNet run dense (the original's masked
computation) and the same adaptive ResNet run sparse, with the same weights,
at several FLOPs budgets, for each family of `--families`:

* `sact` (the default): SACT; the vanilla and sparse networks also
  inference-optimised (`sact_tf.inference.optimize`, `*_opt`). Random
  3x3 halting convolutions and one halting bias shared by every unit,
  bisected so that SACT spends about 25%, 50%, 75% or 100% of the vanilla
  network's FLOPs. `--halting` picks the halting pattern (or both):
  `random`, random 3x3 halting convolutions, so that the halted positions
  follow the image content (not uniform halting, which whole-unit skipping
  would already exploit); `blob`, halting convolutions fitted so that one
  smooth blob per image runs longest (`halting_calibration.blob_halting`).
* `sampling`: Xie et al.'s stochastic feature sampling and interpolation
  (`model_type="sampling"`, deterministic evaluation masks): random 3x3
  mask convolutions and one mask bias shared by every mask, bisected
  likewise (`halting_calibration.tune_sampling_bias`).

Keras' own ResNet-v2 (`keras.applications`, random weights,
`--keras_model`), what a user would otherwise run, is timed in the same
rounds: every time is also reported as a ratio to Keras'. The networks are
random with realistic statistics: batch norm statistics from the benchmark
images (of the vanilla network, whose weights every family shares).

Images: `--images` (a glob of photos), or by default synthetic images with
the 1/f^2 power spectrum of natural images (white noise would make halting
maps unnaturally fragmented).

Reports ms per image, the FLOPs fraction (family / vanilla FLOPs), the
wall-clock fraction (sparse / dense time), the efficiency (FLOPs fraction /
wall-clock fraction), a per-unit micro-benchmark (one SACT unit of each
block at set active fractions, against the ideal `sparse_cost`) and, with
`--scatter_benchmark`, the scatters that `sact_tf.sparse.scatter` compiles
with XLA or not (`SparseConfig.scatter_compiled`), as a table and as JSON
(`--output`). The models run in interleaved rounds; times are medians over the rounds and ratios
medians of the per-round ratios, so that the drifting speed of a shared
machine cancels out.

  python tools/benchmark.py --output=benchmark.json
  python tools/benchmark.py --families=sampling --unit_benchmark=false
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import glob
import json
import os
import platform
import sys
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from sact_tf import inference
from sact_tf import models
from sact_tf.sparse import active_set
from sact_tf.sparse import map_state
from sact_tf.sparse import residual_rows
from sact_tf.sparse import scatter
from sact_tf.sparse import unit_step
from sact_tf.sparse.sparse_config import SparseConfig
from sact_tf.utils import files
from sact_tf.utils import halting_calibration

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "101", "ImageNet ResNet depth.")
flags.DEFINE_integer("base_channels", 64, "Width of the first block.")
flags.DEFINE_integer("image_size", 224, "Image height and width.")
flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to time.")
flags.DEFINE_list("families", ["sact"], "Adaptive families timed: sact "
                  "(halting, --halting patterns), sampling (Xie et al.'s "
                  "feature sampling and interpolation), or both.")
flags.DEFINE_list("flops_fractions", ["0.25", "0.5", "0.75", "1.0"],
                  "Targets: the family's FLOPs as a fraction of vanilla "
                  "FLOPs; 0: SACT halts every position after the first "
                  "unit of each block, sampling samples only the grid "
                  "prior (what sparse execution cannot shrink); 1: nothing "
                  "halts, every position is sampled.")
flags.DEFINE_list("sparse_kernels", ["tf"],
                  "Sparse kernels to time: tf, xla (or both).")
flags.DEFINE_string("sparse_config", None,
                    "JSON of SparseConfig fields (thresholds, buckets, "
                    "scatter rule) that replace the defaults; the kernels "
                    "come from --sparse_kernels.")
flags.DEFINE_integer("repeats", 11,
                     "Timed rounds (each model once per round).")
flags.DEFINE_integer("warmup", 2, "Untimed runs before timing.")
flags.DEFINE_bool("network_benchmark", True, "Time the whole networks.")
flags.DEFINE_bool("unit_benchmark", True, "Run the per-unit benchmark.")
flags.DEFINE_list("unit_fractions", ["0.25", "0.5", "0.75", "1.0"],
                  "Active fractions of the per-unit benchmark.")
flags.DEFINE_bool("scatter_benchmark", False, "Time tf.tensor_scatter_nd_add "
                  "against its XLA-compiled form on the maps of every block "
                  "(what sparse execution's scatters choose between).")
flags.DEFINE_list("scatter_fractions", ["0.03", "0.1", "0.3", "1.0", "2.0"],
                  "Rows scattered, as fractions of the map's positions "
                  "(a block's output gathers the rows of all its units).")
flags.DEFINE_bool("dilation_paths", False, "Per unit, also time the sparse "
                  "kernels with the 3x3 dilation always gathered and with "
                  "the first conv always on the whole map.")
flags.DEFINE_list("halting", ["random"], "Halting patterns: random (random "
                  "halting convolutions), blob (one smooth blob per image "
                  "runs longest), or both.")
flags.DEFINE_string("keras_model", "same", "Keras' ResNet-v2 timed "
                    "alongside: same (keras.applications.ResNet<model>V2, "
                    "for --model 50, 101 or 152), 50, 101, 152, or none.")
flags.DEFINE_string("images", None, "Glob of images to use (default: "
                    "synthetic 1/f^2 images).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output", None, "JSON file to write.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")

FULL_FLOPS_BIAS = -30.0  # Nothing halts.
FIRST_UNITS_BIAS = 30.0  # Every position halts after the first unit.
ALL_SAMPLED_BIAS = 30.0  # Every mask samples every position.
GRID_ONLY_BIAS = -30.0  # Only the grid prior is sampled.
FAMILIES = ("sact", "sampling")
# family: (set its shared bias, tune it, the bias at 1.0, at 0).
CALIBRATIONS = {
    "sact": (halting_calibration.set_halting_bias,
             halting_calibration.tune_halting_bias, FULL_FLOPS_BIAS,
             FIRST_UNITS_BIAS),
    "sampling": (halting_calibration.set_sampling_bias,
                 halting_calibration.tune_sampling_bias, ALL_SAMPLED_BIAS,
                 GRID_ONLY_BIAS)}
# Whether a sparse unit gathers the 3x3 dilation for its first conv, for
# each way of computing it that `--dilation_paths` times.
DILATION_PATHS = {"gathered": True, "whole_map": False}
SCATTER_CHAIN = 8  # Scatters per timed call (`--scatter_benchmark`).
HALTING_PATTERNS = ("random", "blob")
KERAS_RESNETS = {"50": "ResNet50V2", "101": "ResNet101V2",
                 "152": "ResNet152V2"}


def keras_resnet_name():
  """The `keras.applications` class that `--keras_model` names, or None."""
  name = FLAGS.model if FLAGS.keras_model == "same" else FLAGS.keras_model
  if FLAGS.keras_model == "none":
    return None
  if name not in KERAS_RESNETS:
    raise ValueError(
        f"--keras_model takes same (with --model 50, 101 or 152), "
        f"{', '.join(KERAS_RESNETS)} or none, received "
        f"--keras_model={FLAGS.keras_model!r} with --model={FLAGS.model!r}")
  return KERAS_RESNETS[name]


def keras_resnet(images):
  """Keras' ResNet-v2 with random weights and the images' batch norm stats.

  No download (`weights=None`); 1000 classes, as Keras ships it.
  """
  name = keras_resnet_name()
  if name is None:
    return None
  model = getattr(keras.applications, name)(
      weights=None, input_shape=(FLAGS.image_size, FLAGS.image_size, 3))
  halting_calibration.set_batch_norm_statistics(model, images)
  return model


def synthetic_images(count, size, seed):
  """Images with a 1/f^2 power spectrum, scaled to [-1, 1] per image."""
  rng = np.random.default_rng(seed)
  freq = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 +
                 np.fft.fftfreq(size)[None, :] ** 2)
  amplitude = 1.0 / np.maximum(freq, 1.0 / size)
  spectrum = amplitude[None, :, :, None] * (
      rng.normal(size=(count, size, size, 3)) +
      1j * rng.normal(size=(count, size, size, 3)))
  images = np.real(np.fft.ifft2(spectrum, axes=(1, 2)))
  low = images.min(axis=(1, 2, 3), keepdims=True)
  high = images.max(axis=(1, 2, 3), keepdims=True)
  return (2 * (images - low) / (high - low) - 1).astype(np.float32)


def photo_images(pattern, count, size):
  """Photos matching `pattern`, resized to `size`, in [-1, 1], cycled."""
  paths = sorted(glob.glob(pattern))
  if not paths:
    raise ValueError(f"--images={pattern!r} matches no file")
  images = []
  for path in paths:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                               expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size])
    images.append(image / 127.5 - 1)
  return np.stack([images[i % len(images)] for i in range(count)])


# Path parts of the variables of the adaptive branches (halting heads,
# sampling masks and interpolations), which a vanilla network lacks.
ADAPTIVE_PARTS = ("halting", "/mask_", "/interpolation_")


def copy_weights(source, target):
  """Copies the variables of `source` into `target` by path.

  Those of `target` that `source` lacks must be of its adaptive branches
  (`ADAPTIVE_PARTS`; `source` vanilla): they keep their values.
  """
  values = {v.path[len(source.path):]: v for v in source.variables}
  for v in target.variables:
    key = v.path[len(target.path):]
    if key in values:
      v.assign(values[key])
    elif not any(part in key for part in ADAPTIVE_PARTS):
      raise ValueError(f"{source.name} has no variable {key!r}")


def machine():
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      names = [l.split(":", 1)[1].strip() for l in f if
               l.startswith("model name")]
    cpu = names[0] if names else cpu
  gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
  return {"cpu": cpu, "cores": os.cpu_count(), "gpus": gpus,
          "tensorflow": tf.__version__, "python": platform.python_version()}


def time_interleaved(functions, args, repeats, warmup):
  """Seconds per call of each function, in rounds of one call each.

  Each round starts with the next function in turn, so that none always
  runs right after the same other one (caches, clock boosts).

  Returns:
    `{name: [seconds of each round]}`. The machine's speed drifts (other
    tenants of the host); compare functions by their per-round ratios.
  """
  for fn in functions.values():
    for _ in range(warmup):
      tf.nest.map_structure(np.asarray, fn(*args))
  names = list(functions)
  times = {name: [] for name in names}
  for round_index in range(repeats):
    first = round_index % len(names)
    for name in names[first:] + names[:first]:
      start = time.perf_counter()
      tf.nest.map_structure(np.asarray, functions[name](*args))
      times[name].append(time.perf_counter() - start)
  return times


def median_ratio(times, numerator, denominator):
  """Median over the rounds of `times[numerator] / times[denominator]`."""
  return float(np.median(np.asarray(times[numerator]) /
                         np.asarray(times[denominator])))


def _models(model_type):
  """The dense model of a family and its sparse ones (per kernels), built."""
  kwargs = {"model": FLAGS.model, "base_channels": FLAGS.base_channels,
            "model_type": model_type}
  dense = models.imagenet_resnet(**kwargs)
  sparse = {k: models.imagenet_resnet(execution="sparse",
                                      sparse_config=sparse_config(k),
                                      **kwargs)
            for k in FLAGS.sparse_kernels}
  for model in [dense, *sparse.values()]:
    model.build((None, FLAGS.image_size, FLAGS.image_size, 3))
  return dense, sparse


def _functions(named_models):
  """`{name: tf.function of the model at inference}`."""
  return {name: tf.function(lambda x, m=m: m(x, training=False))
          for name, m in named_models.items()}


def network_benchmark(images):
  """Timings of each family at each batch size and FLOPs target.

  One vanilla network (batch norm statistics from `images`) gives every
  family its weights and is timed with each, with Keras' ResNet.
  """
  vanilla = models.imagenet_resnet(model_type="vanilla", model=FLAGS.model,
                                   base_channels=FLAGS.base_channels)
  vanilla.build((None, FLAGS.image_size, FLAGS.image_size, 3))
  halting_calibration.set_batch_norm_statistics(vanilla, images)
  baseline = {"vanilla": vanilla}
  reference = keras_resnet(images)
  if reference is not None:
    baseline["keras"] = reference
  baseline = _functions(baseline)
  rows = []
  if "sact" in FLAGS.families:
    rows += sact_benchmark(images, vanilla, baseline)
  if "sampling" in FLAGS.families:
    rows += sampling_benchmark(images, vanilla, baseline)
  return rows


def sact_benchmark(images, vanilla, baseline):
  """SACT's rows: each halting pattern, batch size and FLOPs target.

  Also times the inference-optimised vanilla and sparse networks.
  """
  dense, sparse = _models("sact")
  copy_weights(vanilla, dense)
  # The halting heads' own batch norms, on the network's features.
  halting_calibration.set_batch_norm_statistics(dense, images, "halting")
  optimized = {f"sparse_{k}_opt": inference.optimize(m)
               for k, m in sparse.items()}
  functions = dict(baseline, **_functions(
      {"dense": dense, **{f"sparse_{k}": m for k, m in sparse.items()},
       "vanilla_opt": inference.optimize(vanilla), **optimized}))

  def sync():
    for k, model in sparse.items():
      copy_weights(dense, model)
      inference.fold_weights(model, optimized[f"sparse_{k}_opt"])

  def statistics(outputs):
    return {"mean_units": {b.name: float(np.mean(
        outputs[f"{b.name}/num_units"])) for b in dense.blocks}}

  rows = []
  for pattern in FLAGS.halting:
    if pattern == "blob":
      halting_calibration.blob_halting(dense, images, FLAGS.seed)
    else:
      halting_calibration.randomize_halting(dense, FLAGS.seed)
    for batch in [int(b) for b in FLAGS.batch_sizes]:
      rows += _target_rows({"family": "sact", "halting": pattern}, batch,
                           images, dense, functions, sync, statistics)
  return rows


def sampling_benchmark(images, vanilla, baseline):
  """The sampling family's rows: each batch size and FLOPs target.

  The vanilla network's weights, random 3x3 mask convolutions
  (`halting_calibration.randomize_sampling`) and one mask bias, shared by
  every mask, bisected to the target (`tune_sampling_bias`). The masked
  computation (`dense`) and sparse execution are timed.
  """
  dense, sparse = _models("sampling")
  copy_weights(vanilla, dense)
  halting_calibration.randomize_sampling(dense, FLAGS.seed)
  functions = dict(baseline, **_functions(
      {"dense": dense, **{f"sparse_{k}": m for k, m in sparse.items()}}))

  def sync():
    for model in sparse.values():
      copy_weights(dense, model)

  def statistics(outputs):
    return {"density": {b.name: float(np.mean(
        outputs[f"{b.name}/sampling_density"])) for b in dense.blocks}}

  return [row for batch in [int(b) for b in FLAGS.batch_sizes]
          for row in _target_rows({"family": "sampling"}, batch, images,
                                  dense, functions, sync, statistics)]


def set_target(family, dense, fraction, batch_images, vanilla_flops):
  """Sets the shared bias of a family's model for a FLOPs target.

  1.0 and above: nothing halts, every position is sampled; 0: the floor
  (see `--flops_fractions`); otherwise the bias is bisected.
  """
  set_bias, tune, full, floor = CALIBRATIONS[family]
  if fraction >= 1.0:
    set_bias(dense, full)
  elif fraction == 0.0:
    set_bias(dense, floor)
  else:
    tune(dense, batch_images, fraction * vanilla_flops)


def _target_rows(labels, batch, images, dense, functions, sync, statistics):
  """The rows of one family (and pattern) and batch size, one per target.

  Args:
    labels: dict, the row's first entries (`family`, `halting`).
    batch: int.
    images: numpy `[count, H, W, 3]`.
    dense: the family's dense model, whose bias is set per target.
    functions: `{name: function of the images}`: `vanilla`, `dense`,
      `sparse_*`, optionally `vanilla_opt` and `keras`.
    sync: `sync()` copies `dense`'s weights to the sparse models.
    statistics: `statistics(dense outputs)`: dict of the row's family
      statistics.
  """
  batch_images = tf.constant(images[:batch])
  vanilla_flops = float(np.mean(functions["vanilla"](batch_images)["flops"]))
  sparse_names = [name for name in functions if name.startswith("sparse_")]
  rows = []
  for fraction in [float(f) for f in FLAGS.flops_fractions]:
    set_target(labels["family"], dense, fraction, batch_images,
               vanilla_flops)
    sync()
    outputs = {name: fn(batch_images) for name, fn in functions.items()}
    flops = float(np.mean(outputs["dense"]["flops"]))
    # The optimised models round differently (folded weights), so a
    # position within float rounding of the halting threshold may halt one
    # unit apart; in the sampling family every unit thresholds two masks at
    # a logit of 0, on features whose float32 rounding differs between the
    # masked and the sparse computation (float64 agrees to 1e-10, see
    # tests/test_sampling.py). Their difference is reported, not asserted.
    exact = labels["family"] == "sact"
    flops_diffs = {
        name: flops_rel_diff(outputs[name]["flops"], outputs["dense"]["flops"],
                             check=exact and not name.endswith("_opt"))
        for name in sparse_names}
    times = time_interleaved(functions, (batch_images,), FLAGS.repeats,
                             FLAGS.warmup)
    row = dict(labels, batch=batch, target=fraction,
               flops_fraction=flops / vanilla_flops,
               ms_per_image={k: 1000 * float(np.median(t)) / batch
                             for k, t in times.items()},
               dense_vs_vanilla=median_ratio(times, "dense", "vanilla"),
               **statistics(outputs["dense"]))
    if "vanilla_opt" in times:
      row["vanilla_opt_vs_vanilla"] = median_ratio(times, "vanilla_opt",
                                                   "vanilla")
    if "keras" in times:
      row["vs_keras"] = {name: median_ratio(times, name, "keras")
                         for name in times if name != "keras"}
    for name in sparse_names:
      wall = median_ratio(times, name, "dense")
      row[name] = {
          "wall_fraction": wall,
          "efficiency": row["flops_fraction"] / wall,
          "vs_vanilla": median_ratio(times, name, "vanilla"),
          "flops_max_rel_diff": flops_diffs[name],
          "max_abs_logit_diff": float(np.max(np.abs(
              outputs[name]["logits"] - outputs["dense"]["logits"])))}
    rows.append(row)
    print(format_network_row(row), flush=True)
  return rows


# Sparse and dense FLOPs may differ by a position or two (4e-4 of an
# image's FLOPs was seen at batch 8) whose cumulative halting probability
# lies within float rounding of 1 - eps: the bias sits mid-plateau of the
# batch's FLOPs, but with thousands of positions the plateaus are narrow.
# More is an error.
FLOPS_REL_TOLERANCE = 1e-3


def flops_rel_diff(sparse_flops, dense_flops, check=True):
  """Largest relative difference of the per-image FLOPs.

  Raises AssertionError above FLOPS_REL_TOLERANCE if `check`.
  """
  sparse_flops, dense_flops = (np.asarray(f, np.float64)
                               for f in (sparse_flops, dense_flops))
  diff = float(np.max(np.abs(sparse_flops / dense_flops - 1)))
  if check and diff > FLOPS_REL_TOLERANCE:
    raise AssertionError(f"sparse FLOPs {sparse_flops} differ from dense "
                         f"FLOPs {dense_flops} by up to {diff:.2e}")
  return diff


def smooth_mask(shape, fraction, rng):
  """A spatially coherent random mask with `fraction` of ones."""
  noise = rng.normal(size=shape).astype(np.float32)
  for _ in range(2):
    noise = tf.nn.avg_pool2d(noise, 3, 1, "SAME").numpy()
  threshold = np.quantile(noise, 1 - fraction) if fraction < 1 else -np.inf
  return (noise > threshold).astype(np.float32)


def sparse_config(kernels):
  """The `SparseConfig` of `--sparse_config` with `kernels`."""
  fields = json.loads(FLAGS.sparse_config) if FLAGS.sparse_config else {}
  return SparseConfig.create(dict(fields, kernels=kernels))


def unit_benchmark():
  """Dense vs sparse time of one (non-first) unit of every block.

  The sparse kernels are timed themselves (`unit_step.sparse_unit`), with
  the first conv's path the configuration picks for the mask, and with
  `--dilation_paths` both paths.
  """
  model = models.imagenet_resnet(model=FLAGS.model, model_type="sact",
                                 base_channels=FLAGS.base_channels)
  model.build((None, FLAGS.image_size, FLAGS.image_size, 3))
  rng = np.random.default_rng(FLAGS.seed)
  rows = []
  for index, block in enumerate(model.blocks):
    if len(block.units) < 2:
      continue  # No unit of the block runs on a residual mask.
    unit = block.units[1]
    # The stem and each block's first unit halve the resolution (SAME).
    size = -(-FLAGS.image_size // (4 * 2**index))
    depth = unit.residual_unit.depth
    for batch in [int(b) for b in FLAGS.batch_sizes]:
      x = tf.constant(rng.normal(size=(batch, size, size, depth)),
                      tf.float32)
      # In a network a unit receives the state with its mean.
      state = map_state.from_map(x)
      for fraction in [float(f) for f in FLAGS.unit_fractions]:
        mask = tf.constant(smooth_mask((batch, size, size, 1), fraction,
                                       rng))
        active = float(np.mean(mask))
        dilated = float(np.mean(active_set.dilate_mask(mask)))
        # Each returns the new state map and the halting probabilities.
        functions = {"dense": tf.function(
            lambda u=unit, m=mask: u(x, residual_mask=m,
                                     training=False)[:2])}
        for k in FLAGS.sparse_kernels:
          config = sparse_config(k)
          gathered = dilated < config.gathered_below(depth)
          functions[f"sparse_{k}"] = _sparse_unit(unit, config, state, mask,
                                                  gathered)
          for path, gather in (DILATION_PATHS.items()
                               if FLAGS.dilation_paths else ()):
            functions[f"sparse_{k}_{path}"] = _sparse_unit(
                unit, config, state, mask, gather)
        times = time_interleaved(functions, (), 3 * FLAGS.repeats,
                                 FLAGS.warmup)
        ideal = float(residual_rows.sparse_cost(unit.residual_unit, active,
                                                dilated))
        row = {"block": block.name, "size": size, "depth": depth,
               "batch": batch, "active": active, "dilated": dilated,
               "ideal": ideal,
               "ms": {k: 1000 * float(np.median(t))
                      for k, t in times.items()}}
        for name in functions:
          if name != "dense":
            ratio = median_ratio(times, name, "dense")
            row[name] = {"ratio": ratio, "efficiency": ideal / ratio}
        rows.append(row)
        print(format_unit_row(row), flush=True)
  return rows


def _sparse_unit(unit, config, state, mask, gather_dilation):
  """A function giving the sparse unit's new state map and probabilities."""
  dilated_mask = active_set.dilate_mask(mask)
  kernel = unit_step.sparse_unit_kernel(unit, config)

  @tf.function
  def run():
    active, dilated = unit_step.active_sets(config, mask, dilated_mask,
                                            gather_dilation)
    new_state, _, proba = kernel(state, active, dilated, False)
    return map_state.materialize(new_state, config).map, proba

  return run


def scatter_benchmark():
  """`tf.tensor_scatter_nd_add` vs its XLA form, per block map and count.

  The maps are those of the blocks' states (`[batch, size, size, depth]`)
  and of their halting probabilities (`depth` 1); the rows go to random
  positions, duplicates included. Each function chains `SCATTER_CHAIN`
  scatters, so that the time of one call is not dominated by the call.
  """
  model = models.imagenet_resnet(model=FLAGS.model, model_type="sact",
                                 base_channels=FLAGS.base_channels)
  model.build((None, FLAGS.image_size, FLAGS.image_size, 3))
  rng = np.random.default_rng(FLAGS.seed)
  config = sparse_config("tf")
  rows = []
  for index, block in enumerate(model.blocks):
    size = -(-FLAGS.image_size // (4 * 2**index))
    for depth in (1, block.units[0].residual_unit.depth):
      for batch in [int(b) for b in FLAGS.batch_sizes]:
        positions = batch * size * size
        x = tf.constant(rng.normal(size=(batch, size, size, depth)),
                        tf.float32)
        for fraction in [float(f) for f in FLAGS.scatter_fractions]:
          count = max(int(round(fraction * positions)), 1)
          indices = tf.constant(np.stack(
              [rng.integers(0, n, count) for n in (batch, size, size)], 1),
                                tf.int32)
          updates = tf.constant(rng.normal(size=(count, depth)), tf.float32)
          capacity = scatter.geometric_capacity(count)
          padded = (tf.pad(indices, [[0, capacity - count], [0, 0]]),
                    tf.pad(updates, [[0, capacity - count], [0, 0]]))
          functions = {
              "tf": _scatter_chain(tf.tensor_scatter_nd_add, indices,
                                   updates),
              "xla": _scatter_chain(scatter.xla_scatter_nd_add,
                                    *padded),
              "none": _scatter_chain(None, indices, updates)}
          times = time_interleaved(functions, (x,), 3 * FLAGS.repeats,
                                   FLAGS.warmup)
          base = np.median(times["none"])
          us = {k: 1e6 * (float(np.median(times[k])) - base) / SCATTER_CHAIN
                for k in ("tf", "xla")}
          row = {"block": block.name, "batch": batch, "size": size,
                 "depth": depth, "rows": count, "us": us,
                 "faster": min(us, key=us.get),
                 "chosen": ("xla" if config.scatter_compiled(count, depth)
                            else "tf")}
          rows.append(row)
          print(format_scatter_row(row), flush=True)
  return rows


def _scatter_chain(scatter_fn, indices, updates):
  """A function of `x` scattering `SCATTER_CHAIN` times (None: none)."""

  @tf.function(autograph=False)
  def chain(x):
    if scatter_fn is not None:
      for _ in range(SCATTER_CHAIN):
        x = scatter_fn(x, indices, updates)
    return x[0, 0, 0, 0]

  return chain


def format_network_row(row):
  ms = row["ms_per_image"]
  family = " ".join(row[k] for k in ("family", "halting") if k in row)
  text = (f"{family} batch {row['batch']:2d}  FLOPs "
          f"{100 * row['flops_fraction']:5.1f}%  ms/img")
  for name, value in ms.items():
    text += f"  {name} {value:.1f}"
  for k in FLAGS.sparse_kernels:
    s = row[f"sparse_{k}"]
    text += (f"  sparse[{k}] wall {s['wall_fraction']:.3f} efficiency "
             f"{100 * s['efficiency']:5.1f}%")
  if "vs_keras" in row:
    text += "  vs keras: " + " ".join(
        f"{name} {ratio:.3f}" for name, ratio in row["vs_keras"].items())
  return text


def format_unit_row(row):
  text = (f"{row['block']} {row['size']}x{row['size']}x{row['depth']} "
          f"batch {row['batch']}  active {row['active']:.2f} dilated "
          f"{row['dilated']:.2f}  ideal {row['ideal']:.3f}  dense "
          f"{row['ms']['dense']:.2f} ms")
  for name in row["ms"]:
    if name != "dense":
      text += (f"  {name} {row['ms'][name]:.2f} ms ratio "
               f"{row[name]['ratio']:.3f} efficiency "
               f"{100 * row[name]['efficiency']:5.1f}%")
  return text


def format_scatter_row(row):
  return (f"scatter {row['block']} batch {row['batch']} {row['size']}x"
          f"{row['size']}x{row['depth']}  rows {row['rows']:6d}  tf "
          f"{row['us']['tf']:8.1f} us  xla {row['us']['xla']:8.1f} us  "
          f"faster {row['faster']}  chosen {row['chosen']}")


def checked_images():
  """Checks the flags and returns the images to time, `[N, S, S, 3]`.

  Raises:
    ValueError: a flag value that cannot be run, named in the message.
  """
  for k in FLAGS.sparse_kernels:
    sparse_config(k)
  for family in FLAGS.families:
    if family not in FAMILIES:
      raise ValueError(f"--families takes {', '.join(FAMILIES)}, "
                       f"received {family!r}")
  for pattern in FLAGS.halting:
    if pattern not in HALTING_PATTERNS:
      raise ValueError(f"--halting takes {', '.join(HALTING_PATTERNS)}, "
                       f"received {pattern!r}")
  if FLAGS.network_benchmark:
    keras_resnet_name()
  for fraction in FLAGS.flops_fractions:
    if not float(fraction) >= 0:
      raise ValueError(f"--flops_fractions takes fractions >= 0, "
                       f"received {fraction!r}")
  if FLAGS.output:
    files.check_writable_output(FLAGS.output, FLAGS.overwrite)
  count = max(8, *[int(b) for b in FLAGS.batch_sizes])
  return (photo_images(FLAGS.images, count, FLAGS.image_size)
          if FLAGS.images else
          synthetic_images(count, FLAGS.image_size, FLAGS.seed))


def main(argv):
  del argv
  try:
    images = checked_images()
  except (ValueError, json.JSONDecodeError) as e:
    sys.exit(f"benchmark: error: {e}")
  report = {"machine": machine(),
            "settings": {k: FLAGS[k].value for k in (
                "model", "base_channels", "image_size", "batch_sizes",
                "families", "flops_fractions", "sparse_kernels", "sparse_config",
                "halting", "keras_model", "repeats", "images", "seed")}}
  print(f"{report['machine']}")
  if FLAGS.network_benchmark:
    report["network"] = network_benchmark(images)
  if FLAGS.unit_benchmark:
    report["units"] = unit_benchmark()
  if FLAGS.scatter_benchmark:
    report["scatters"] = scatter_benchmark()
  if FLAGS.output:
    with files.atomic_output(FLAGS.output, FLAGS.overwrite) as tmp:
      with open(tmp, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
  app.run(main)
