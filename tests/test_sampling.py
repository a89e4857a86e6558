"""Tests of the stochastic feature sampling and interpolation family."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import tiny_model
from sact_tf import sampling
from sact_tf.layers import MaskedConv2D
from sact_tf.layers import RbfInterpolation
from sact_tf.layers import SamplingMask
from sact_tf.layers import SamplingUnit
from sact_tf.sparse import sampling_rows
from sact_tf.training import run_config

FAMILIES = ["cifar", "imagenet"]


def test_gumbel_sigmoid_frequency_is_sigmoid():
  n = 20000
  logits = tf.constant([-2.0, -0.5, 0.0, 0.7, 2.5])
  tiled = tf.tile(logits[None, :, None, None], [n, 1, 1, 1])
  sample = sampling.gumbel_sigmoid(tiled, 0.5, seed=3)
  frequency = tf.reduce_mean(tf.cast(sample >= 0.5, tf.float64), [0, 2, 3])
  p = tf.sigmoid(tf.cast(logits, tf.float64))
  standard_error = np.sqrt(p * (1 - p) / n)
  assert np.all(np.abs(frequency - p) < 3 * standard_error), (frequency, p)


def test_gumbel_sigmoid_tends_to_hard_threshold():
  logits = tf.random.normal([4, 8, 8, 1], stddev=2.0, seed=1)
  hard = tf.cast(
      logits + sampling.logistic_noise(tf.shape(logits), tf.float32, (5, 0)) >= 0,
      tf.float32)
  errors = [float(tf.reduce_mean(tf.abs(
      sampling.gumbel_sigmoid(logits, t, seed=(5, 0)) - hard)))
            for t in (1.0, 0.1, 0.01, 1e-4)]
  assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3, errors


def test_grid_prior():
  mask = sampling.grid_prior(tf.zeros([1, 9, 6, 1]), 4)
  expected = np.zeros([9, 6])
  expected[::4, ::4] = 1
  np.testing.assert_array_equal(mask[0, ..., 0], expected)


def test_interpolation_of_a_fully_sampled_map_is_the_map():
  features = tf.random.normal([2, 9, 7, 3])
  out = sampling.interpolate(features, tf.ones([2, 9, 7, 1]), 0.5)
  np.testing.assert_array_equal(out, features)


def test_interpolation_reconstructs_a_smooth_field_from_a_grid():
  """Bound: `f^(p) - f(p) = sum_q w_q (f(q) - f(p)) / (W + eps) - eps f(p) /
  (W + eps)`, `W = sum_q w_q`, so `|error| <= (G sum_q w_q |q - p| + eps
  |f(p)|) / (W + eps)` with `G` the field's largest gradient norm."""
  size, stride, lam = 24, 3, 0.5
  i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
  field = 1.0 + 0.5 * np.sin(0.2 * i + 0.1 * j)
  gradient = 0.5 * np.hypot(0.2, 0.1)
  mask = sampling.grid(tf.constant([1, size, size, 1]), stride, tf.float64)
  out = sampling.interpolate(tf.constant(field[None, :, :, None]), mask, lam)
  error = np.abs(out.numpy()[0, :, :, 0] - field)
  r = (sampling.KERNEL_SIZE - 1) // 2
  d = np.arange(-r, r + 1)
  distance = np.hypot(d[:, None], d[None, :])
  weight = np.exp(-lam * distance**2)
  grid = np.pad(mask.numpy()[0, :, :, 0], r)
  bound = np.zeros_like(field)
  for y in range(size):
    for x in range(size):
      window = grid[y:y + 2 * r + 1, x:x + 2 * r + 1]
      total = (weight * window).sum()
      bound[y, x] = (gradient * (weight * distance * window).sum() +
                     sampling.NORMALIZER_EPS * field[y, x]) / (
                         total + sampling.NORMALIZER_EPS)
  assert np.all(error <= bound + 1e-12)
  # A useful reconstruction: small where grid positions surround p (up to
  # the last grid row and column), small on average (the field varies by
  # 0.33 about its mean on average).
  inside = size - size % stride - stride + 1
  assert error[:inside, :inside].max() < 0.1 and error.mean() < 0.05


def test_sampling_mask_layer():
  layer = SamplingMask(strides=2, grid_stride=2, seed=0)
  x = tf.random.normal([2, 8, 8, 3])
  mask, logits, flops = layer(x, training=False)
  # Kernel 0, bias 3: every position sampled, 3x3 conv to 1 channel counted.
  np.testing.assert_array_equal(mask, tf.ones([2, 4, 4, 1]))
  np.testing.assert_allclose(logits, 3.0)
  np.testing.assert_array_equal(flops, [2 * 16 * 9 * 3] * 2)
  layer.conv.bias.assign([-3.0])
  mask, _, _ = layer(x, training=False)
  np.testing.assert_array_equal(mask[0, ..., 0], sampling.grid(
      tf.constant([1, 4, 4, 1]), 2, tf.float32)[0, ..., 0])
  # Training anneals the temperature once per call; evaluation does not.
  for _ in range(3):
    soft, _, _ = layer(x, training=True)
  np.testing.assert_allclose(layer.temperature.numpy(), 0.99998**3, 1e-6)
  assert 0 < float(tf.reduce_min(soft)) and float(tf.reduce_max(soft)) == 1
  noisy = SamplingMask(evaluation="noisy", seed=1)
  mask, _, _ = noisy(tf.zeros([1, 16, 16, 2]), training=False)
  values = mask.numpy()
  assert np.all((values == 0) | (values >= 0.5))
  # sigmoid(3) = 0.953 of the positions (and the grid) sampled.
  assert 0.9 < np.mean(values > 0) < 0.99
  restored = SamplingMask.from_config(layer.get_config())
  assert restored.get_config() == layer.get_config()


def test_sampling_unit_gradients_reach_masks_and_kernels():
  keras.utils.set_random_seed(0)
  model = tiny_model("cifar", "sampling", sparse_loss_weight=0.1)
  x = tf.random.normal([2, 16, 16, 3])
  with tf.GradientTape() as tape:
    out = model(x, training=True)
    loss = tf.reduce_mean(out["logits"]**2) + tf.add_n(model.losses)
  names = [v.path for v in model.trainable_variables]
  grads = dict(zip(names, tape.gradient(loss, model.trainable_variables)))
  for name in ("block_2/unit_1/mask_1/conv/weights",
               "block_2/unit_1/mask_2/conv/biases",
               "block_2/unit_1/interpolation_1/rbf_lambda"):
    grad = grads["resnet_residual/" + name]
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, name


def test_sparse_loss_value():
  keras.utils.set_random_seed(0)
  model = tiny_model("imagenet", "sampling", sparse_loss_weight=0.2,
                     weight_decay=0.0)
  model(tf.random.normal([2, 32, 32, 3]), training=False)
  # Fresh masks: sigmoid(3) everywhere, in every unit, both masks.
  [loss] = model.losses
  np.testing.assert_allclose(loss, 0.2 * (1 / (1 + np.exp(-3.0))), 1e-6)


def _copy_matching(source, target):
  values = {v.path[len(source.name):]: v for v in source.variables}
  copied = 0
  for v in target.variables:
    key = v.path[len(target.name):]
    if key in values:
      v.assign(values[key])
      copied += 1
  assert copied == len(source.variables)


def _mask_conv_flops(model, image_size):
  """Both mask convs of every unit: `2 * 9 * c_in` per output position."""
  ceil = lambda a, b: -(-a // b)
  # The ImageNet root: a stride-2 conv and a stride-2 max pool.
  size = ceil(image_size, 4) if model.name == "resnet_v2" else image_size
  total = 0
  for block in model.blocks:
    for unit in block.units:
      c_in = unit.residual_unit.depth_in
      total += sum(2 * 9 * c_in * ceil(size, mask.strides)**2
                   for mask in unit.masks)
      size = ceil(size, unit.residual_unit.stride)
  return total


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("training", [False, True])
def test_all_ones_masks_equal_vanilla(family, training):
  keras.utils.set_random_seed(0)
  x = tf.random.normal([2, 16, 16, 3])
  vanilla = tiny_model(family, "vanilla")
  vanilla.build(x.shape)
  # Grid stride 1: the grid prior samples every position.
  model = tiny_model(family, "sampling", grid_stride=1)
  model.build(x.shape)
  _copy_matching(vanilla, model)
  expected = vanilla(x, training=training)
  out = model(x, training=training)
  np.testing.assert_array_equal(out["logits"], expected["logits"])
  np.testing.assert_array_equal(out["flops"], expected["flops"] +
                                _mask_conv_flops(model, 16))
  np.testing.assert_array_equal(out["sampling_density_map"],
                                tf.ones([2, 16, 16, 1]))


@pytest.mark.parametrize("family", FAMILIES)
def test_flops_follow_the_masks(family):
  """Sparse masks: FLOPs counted conv by conv from the evaluation masks."""
  keras.utils.set_random_seed(1)
  model = tiny_model(family, "sampling", grid_stride=2)
  x = tf.random.normal([2, 32, 32, 3])
  model.build(x.shape)
  for block in model.blocks:
    for unit in block.units:
      for mask in unit.masks:
        mask.conv.kernel.assign(tf.random.normal(mask.conv.kernel.shape))
        mask.conv.bias.assign([0.0])
  out = model(x, training=False)
  block = model.blocks[1]
  unit = block.units[0]
  state = out[f"{model.blocks[0].name}/outputs"]
  _, flops, info = unit(state, training=False)
  convs = unit.residual_unit.convs
  count = lambda m: tf.reduce_sum(m, [1, 2, 3]).numpy().astype(np.int64)
  m1, m2 = info["mask_1"], info["mask_2"]
  assert 0 < count(m2).min() and count(m2).max() < m2.shape[1] * m2.shape[2]
  per_position = lambda c: 2 * np.prod(c.kernel_size) * c.in_channels * (
      c.filters)
  expected = count(m1) * per_position(convs[0]) + sum(
      count(m2) * per_position(c) for c in convs[1:])
  expected += sum(2 * 9 * unit.residual_unit.depth_in * m.shape[1] *
                  m.shape[2] for m in (m1, m2))
  skipped = lambda m: m.shape[1] * m.shape[2] - count(m)
  expected += skipped(m1) * 2 * 49 * (convs[0].filters + 1)
  expected += skipped(m2) * 2 * 49 * (convs[-1].filters + 1)
  shortcut = unit.residual_unit
  if getattr(shortcut, "shortcut_conv", None) is not None:
    conv = shortcut.shortcut_conv
    expected += 2 * m2.shape[1] * m2.shape[2] * conv.in_channels * (
        conv.filters)
  np.testing.assert_array_equal(flops, expected)


def test_model_config_round_trip():
  model = tiny_model("cifar", "sampling", sparse_loss_weight=0.05,
                     grid_stride=3, sampling_evaluation="noisy")
  config = model.get_config()
  assert config["sparse_loss_weight"] == 0.05 and config["grid_stride"] == 3
  clone = type(model).from_config(config)
  assert clone.get_config() == config
  unit = clone.blocks[0].units[0]
  assert isinstance(unit, SamplingUnit) and unit.masks[0].evaluation == "noisy"


@pytest.mark.parametrize("make, message", [
    (lambda: tiny_model("cifar", "sampling", sparse_loss_weight=-0.1),
     "sparse_loss_weight=-0.1"),
    (lambda: tiny_model("imagenet", "sampling", grid_stride=0),
     "grid_stride=0"),
    (lambda: SamplingMask(initial_temperature=0.0), "initial_temperature=0.0"),
    (lambda: SamplingMask(eval_temperature=-1), "eval_temperature=-1"),
    (lambda: RbfInterpolation(initial_lambda=-1.0), "initial_lambda=-1.0"),
    (lambda: tiny_model("cifar", "sampling", sampling_evaluation="x"),
     "sampling_evaluation='x'"),
])
def test_bad_arguments(make, message):
  with pytest.raises(ValueError, match=message) as error:
    make()
  assert "\n" not in str(error.value)


def test_saved_model_matches_the_model(tmp_path_factory):
  model, _, path = helpers.exported(tmp_path_factory, "cifar", "sampling")
  images = np.random.default_rng(2).normal(size=(3, 32, 32, 3)).astype(
      np.float32)
  saved = tf.saved_model.load(str(path)).signatures["serving_default"](
      images=tf.constant(images))
  end_points = model(images, training=False)
  np.testing.assert_array_equal(saved["flops"], end_points["flops"])
  np.testing.assert_allclose(saved["logits"], end_points["logits"],
                             atol=1e-5)
  np.testing.assert_allclose(saved["sampling_density_map"],
                             end_points["sampling_density_map"], atol=1e-6)
  density = saved["block_2_sampling_density"].numpy()
  assert 0 < density.min() and density.max() < 1


def test_run_config_sparse_loss_weight():
  config = run_config.make_config({"model_type": "sampling"})
  assert config["model_kwargs"]["sparse_loss_weight"] == 0.1
  config = run_config.make_config({"model_type": "sampling",
                                   "sparse_loss_weight": 0.0})
  assert config["model_kwargs"]["sparse_loss_weight"] == 0.0
  assert "sparse_loss_weight" not in run_config.make_config(
      {"model_type": "sact"})["model_kwargs"]
  with pytest.raises(ValueError, match="received -0.5"):
    run_config.make_config({"model_type": "sampling",
                            "sparse_loss_weight": -0.5})
  with pytest.raises(ValueError, match="received --model_type='sact'"):
    run_config.make_config({"model_type": "sact", "sparse_loss_weight": 0.1})


@pytest.fixture
def float64():
  keras.config.set_dtype_policy("float64")
  yield
  keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("padding", ["same", "symmetric"])
@pytest.mark.parametrize("kernel_size,size", [(3, 8), (3, 7), (1, 7)])
def test_read_centres_are_the_strided_patch_centres(padding, kernel_size,
                                                    size):
  """A stride-2 conv whose kernel is its centre tap reads the centres."""
  conv = MaskedConv2D(1, kernel_size, 2, padding=padding,
                      bias_initializer=None, kernel_initializer=0.0)
  conv.build((None, size, size, 1))
  centre = np.zeros(conv.kernel.shape, np.float32)
  centre[kernel_size // 2, kernel_size // 2] = 1.0
  conv.kernel.assign(centre)
  x = tf.random.stateless_uniform([2, size, size, 1], [3, 4], 1.0, 2.0)
  outputs = conv.convolve(x)
  mask = tf.cast(tf.random.stateless_uniform(tf.shape(outputs), [5, 6]) < 0.5,
                 tf.float32)
  centres = sampling_rows.read_centres(conv, mask, tf.shape(x))
  assert centres.shape == x.shape
  # As many centres as outputs, read in the same order.
  np.testing.assert_array_equal(tf.boolean_mask(x, centres[..., 0] > 0),
                                tf.boolean_mask(outputs, mask[..., 0] > 0))


# Map sizes of the blocks: CIFAR 16, 8, 4 (SAME padding centres the
# strided patches on odd rows; the CIFAR shortcut needs even maps);
# ImageNet 12, 6, 3, 2 (symmetric padding, the last from 3 rows).
@pytest.mark.parametrize("family,size", [("cifar", 16), ("imagenet", 48)])
def test_sparse_equals_masked_in_float64(family, size, float64):
  """Outputs, FLOPs and input gradients, in a tf.function; every unit,
  strided or not, runs sparse."""
  keras.utils.set_random_seed(0)
  depth = {"cifar": "2", "imagenet": "2_3_1_1"}[family]
  dense = tiny_model(family, "sampling", depth=depth)
  sparse = tiny_model(family, "sampling", depth=depth, execution="sparse")
  images = tf.random.stateless_normal([2, size, size, 3], [1, 2],
                                      dtype=tf.float64)
  for model in (dense, sparse):
    model.build(images.shape)
  helpers.randomize_sampling(dense)
  _copy_matching(dense, sparse)

  def outputs_and_gradient(model):
    with tf.GradientTape() as tape:
      tape.watch(images)
      out = model(images, training=False)
      loss = tf.reduce_sum(out["logits"]**2)
    return out, tape.gradient(loss, images)

  expected, expected_gradient = outputs_and_gradient(dense)
  density = expected["sampling_density_map"].numpy()
  assert 0.2 < density.mean() < 0.9  # Really sparse, not all or nothing.
  units = [u for b in sparse.blocks for u in b.units]
  assert all(sampling_rows.supports(u) for u in units)
  assert sum(u.residual_unit.stride > 1 for u in units) >= 2
  out, gradient = tf.function(outputs_and_gradient)(sparse)
  assert out["logits"].dtype == tf.float64
  for key, value in expected.items():
    if value.dtype.is_floating:
      np.testing.assert_allclose(out[key], value, rtol=0, atol=1e-10,
                                 err_msg=key)
    else:
      np.testing.assert_array_equal(out[key], value, err_msg=key)
  np.testing.assert_allclose(gradient, expected_gradient, rtol=0, atol=1e-10)
