"""Sparse SACT execution: the same outputs, FLOPs and gradients as dense."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sact_tf import models
from sact_tf.export import tflite
from sact_tf.layers import halting_unit
from sact_tf.layers import masking
from sact_tf.layers import residual_unit
from sact_tf.layers import sparse_ops
from sact_tf.utils import halting_calibration

KERNELS = ["tf", "xla"]


def smooth_mask(shape, fraction, seed=0):
  rng = np.random.default_rng(seed)
  noise = tf.nn.avg_pool2d(rng.normal(size=shape).astype(np.float32), 3, 1,
                           "SAME").numpy()
  return (noise > np.quantile(noise, 1 - fraction)).astype(np.float32)


def source_mask(source, shape):
  """The `[batch, H, W, 1]` mask of the real entries of an `ActiveSet`."""
  return tf.scatter_nd(source.indices[:source.count],
                       tf.ones([source.count, 1]), [*shape[:3], 1])


class TestSparseOps:

  def test_active_set(self):
    mask = np.zeros([2, 3, 4, 1], np.float32)
    mask[0, 1, 2] = mask[1, 0, 0] = mask[1, 2, 3] = 1
    active = sparse_ops.active_set(tf.constant(mask))
    np.testing.assert_array_equal(active.indices,
                                  [[0, 1, 2], [1, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(active.rows, [6, 12, 12 + 11])
    # Padded layout: rows of (H + 2) x (W + 2) = 5 x 6 per image.
    np.testing.assert_array_equal(active.padded_rows,
                                  [2 * 6 + 3, 30 + 7, 30 + 3 * 6 + 4])
    assert active.count == 3 and all(active.valid)

  def test_buckets(self):
    mask = np.zeros([1, 4, 4, 1], np.float32)
    mask[0, :2, :3] = 1  # 6 of 16 positions.
    active = sparse_ops.active_set(tf.constant(mask), num_buckets=8)
    # Capacity: 6 rounded up to a multiple of ceil(16 / 8) = 2.
    assert active.indices.shape[0] == 6 and active.count == 6
    active = sparse_ops.active_set(tf.constant(mask), num_buckets=4)
    assert active.indices.shape[0] == 8 and active.count == 6
    np.testing.assert_array_equal(active.valid, [True] * 6 + [False] * 2)
    np.testing.assert_array_equal(active.padded_rows[6:], 0)
    np.testing.assert_array_equal(active.rows[6:], 0)
    assert [int(sparse_ops.bucket_capacity(c, 100, 8)) for c in
            (0, 1, 13, 14, 100)] == [13, 13, 13, 26, 104]

  @pytest.mark.parametrize("kernel_size", [1, 3])
  def test_gather_patches(self, kernel_size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=[2, 5, 4, 3]).astype(np.float32)
    mask = tf.constant(smooth_mask([2, 5, 4, 1], 0.5))
    active = sparse_ops.active_set(mask, num_buckets=4)
    patches = sparse_ops.gather_patches(
        sparse_ops.to_padded(x), active, tf.shape(x), kernel_size)
    expected = tf.image.extract_patches(
        x, [1, kernel_size, kernel_size, 1], [1] * 4, [1] * 4, "SAME")
    expected = tf.gather_nd(expected, active.indices[:active.count])
    np.testing.assert_array_equal(patches[:active.count], expected)
    # Dummy entries read the zero ring.
    np.testing.assert_array_equal(patches[active.count:], 0)
    # The same patches from the rows of a set of a map that is zero
    # elsewhere: dummies of both sets read zeros.
    source = sparse_ops.active_set(
        tf.constant(smooth_mask([2, 5, 4, 1], 0.6, seed=4)), num_buckets=4)
    rows = tf.concat([tf.gather_nd(x, source.indices[:source.count]),
                      tf.fill([source.indices.shape[0] - source.count, 3],
                              7.0)], 0)
    masked = x * source_mask(source, x.shape)
    np.testing.assert_array_equal(
        sparse_ops.gather_neighbours(rows, sparse_ops.neighbour_entries(
            source, active, tf.shape(x), kernel_size)),
        sparse_ops.gather_patches(sparse_ops.to_padded(masked), active,
                                  tf.shape(x), kernel_size))

  def test_sum_taps_is_a_one_channel_conv(self):
    rng = np.random.default_rng(2)
    x = rng.normal(size=[2, 6, 5, 4]).astype(np.float32)
    kernel = rng.normal(size=[3, 3, 4, 1]).astype(np.float32)
    mask = tf.constant(smooth_mask([2, 6, 5, 1], 0.4))
    active = sparse_ops.active_set(mask)
    taps = tf.reshape(tf.matmul(tf.reshape(x, [-1, 4]),
                                tf.transpose(tf.reshape(kernel, [9, 4]))),
                      [2, 6, 5, 9])
    result = sparse_ops.sum_taps(
        sparse_ops.to_padded(taps),
        sparse_ops.neighbour_rows(active, tf.shape(x), 3))
    conv = tf.nn.conv2d(x, kernel, 1, "SAME")
    np.testing.assert_allclose(
        result, tf.gather_nd(conv[..., 0], active.indices), atol=1e-5)
    # The taps of the entries of a set, the others zero: the conv of the
    # input masked to the set.
    source = sparse_ops.active_set(tf.constant(smooth_mask([2, 6, 5, 1], 0.7,
                                                           seed=3)))
    result = sparse_ops.sum_taps(
        sparse_ops.with_zero_row(tf.gather_nd(taps, source.indices)),
        sparse_ops.neighbour_entries(source, active, tf.shape(x), 3))
    masked_conv = tf.nn.conv2d(x * source_mask(source, x.shape), kernel, 1,
                               "SAME")
    np.testing.assert_allclose(
        result, tf.gather_nd(masked_conv[..., 0], active.indices), atol=1e-5)
    np.testing.assert_allclose(sparse_ops.sum_taps_map(taps), conv,
                               atol=1e-5)

  @pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6),
                                           (np.float64, 1e-14)])
  def test_spatial_mean(self, dtype, atol):
    run = tf.function(sparse_ops.spatial_mean)
    for shape in ([3, 5, 7, 4], [1, 2, 3, 4]):
      x = np.random.default_rng(0).normal(size=shape).astype(dtype)
      mean = run(x)
      assert mean.dtype == dtype
      np.testing.assert_allclose(mean, x.mean(axis=(1, 2), keepdims=True),
                                 rtol=0, atol=atol)

  def test_scatters(self):
    rows = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    active = sparse_ops.ActiveSet(
        indices=tf.constant([[0, 1, 1], [1, 0, 1], [0, 0, 0]]),
        rows=tf.constant([3, 5, 0]),
        padded_rows=tf.constant([(0 + 2) * 4 + 2, (4 + 1) * 4 + 2, 0]),
        ordinals=tf.fill([2 * 4 * 4], 3),  # Not read by the scatters.
        valid=tf.constant([True, True, False]), count=tf.constant(2),
        has_dummies=True)
    shape = tf.constant([2, 2, 2, 2])
    result = sparse_ops.scatter_map(rows, active, shape).numpy()
    expected = np.zeros([2, 2, 2, 2], np.float32)
    expected[0, 1, 1] = [1, 2]
    expected[1, 0, 1] = [3, 4]
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(sparse_ops.gather_rows(expected, active),
                                  [[1, 2], [3, 4], [0, 0]])

  def test_ordinals(self):
    mask = np.zeros([2, 2, 3, 1], np.float32)
    mask[0, 1, 0] = mask[0, 1, 2] = mask[1, 0, 1] = 1
    active = sparse_ops.active_set(tf.constant(mask), num_buckets=2)
    assert active.indices.shape[0] == 6  # 3 entries, 3 dummies.
    # Padded layout 4 x 5 per image; 6 (the capacity) where no entry.
    expected = np.full([2, 4, 5], 6)
    expected[0, 2, 1], expected[0, 2, 3], expected[1, 1, 2] = 0, 1, 2
    np.testing.assert_array_equal(active.ordinals, expected.reshape(-1))


def tiny(family, execution, sparse_kernels="tf", depth="3", **kwargs):
  if family == "cifar":
    return models.cifar_resnet(depth, num_classes=5, model_type="sact",
                               base_channels=4, execution=execution,
                               sparse_kernels=sparse_kernels, **kwargs)
  return models.imagenet_resnet("2_3_2_2", num_classes=5, model_type="sact",
                                base_channels=4, execution=execution,
                                sparse_kernels=sparse_kernels, **kwargs)


def dense_and_sparse(family, kernels, flops_fraction=0.6, **kwargs):
  """A dense and a sparse SACT model with the same weights.

  The weights are random, with batch norm statistics and one halting bias
  set so that the model spends `flops_fraction` of its maximum FLOPs.
  """
  keras.utils.set_random_seed(0)
  dense = tiny(family, "dense", **kwargs)
  sparse = tiny(family, "sparse", kernels, **kwargs)
  images = tf.random.stateless_normal([2, 32, 32, 3], [0, 1])
  halting_calibration.set_batch_norm_statistics(dense, images)
  halting_calibration.randomize_halting(dense)
  halting_calibration.set_halting_bias(dense, -30.0)
  full = float(np.mean(dense(images)["flops"]))
  halting_calibration.tune_halting_bias(dense, images, flops_fraction * full)
  sparse.build((None, None, None, 3))
  for a, b in zip(sparse.variables, dense.variables):
    a.assign(b)
  return dense, sparse


@pytest.fixture(params=["gathered_dilation", "whole_map_first_conv"])
def always_sparse(monkeypatch, request):
  """Forces the sparse kernels (no dense fallback) and counts their runs.

  Each test runs twice: the first conv and the halting head's taps on the
  gathered 3x3 dilation, and on the whole map.
  """
  whole_map = request.param == "whole_map_first_conv"
  monkeypatch.setattr(halting_unit.HaltingUnit, "dense_above_cost",
                      lambda self: 1.01)
  monkeypatch.setattr(halting_unit.HaltingUnit, "dilation_gathered_below",
                      lambda self: 0.0 if whole_map else 1.01)
  calls = []
  original = residual_unit.ResidualUnit.sparse_residual

  def counted(self, inputs, active, dilated, *args, **kwargs):
    calls.append(self.name)
    if tf.executing_eagerly():  # A graph traces both.
      assert (dilated is None) == whole_map
    return original(self, inputs, active, dilated, *args, **kwargs)

  monkeypatch.setattr(residual_unit.ResidualUnit, "sparse_residual", counted)
  return calls


@pytest.fixture
def float64():
  keras.config.set_dtype_policy("float64")
  yield
  keras.config.set_dtype_policy("float32")


def assert_same(sparse_out, dense_out, atol, rtol=0.0):
  for key, expected in dense_out.items():
    actual = sparse_out[key]
    if expected.dtype.is_integer or "num_units" in key:
      np.testing.assert_array_equal(actual, expected, err_msg=key)
    else:
      np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol,
                                 err_msg=key)


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
@pytest.mark.parametrize("kernels", KERNELS)
def test_sparse_equals_dense_in_float64(family, kernels, always_sparse,
                                        float64):
  dense, sparse = dense_and_sparse(family, kernels)
  images = tf.random.stateless_normal([3, 48, 40, 3], [1, 2], dtype=tf.float64)
  dense_out = dense(images, training=False)
  sparse_out = sparse(images, training=False)
  assert dense_out["logits"].dtype == tf.float64
  # Halting really varies: positions of a block run different numbers of
  # units.
  assert any(len(np.unique(dense_out[f"{b.name}/num_units"])) > 1
             for b in dense.blocks)
  assert always_sparse, "the sparse kernels did not run"
  assert_same(sparse_out, dense_out, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kernels", KERNELS)
def test_sparse_in_tf_function_with_dynamic_shapes(kernels, always_sparse):
  dense, sparse = dense_and_sparse("cifar", kernels, depth="2")
  spec = [tf.TensorSpec([None, None, None, 3])]
  run_dense = tf.function(lambda x: dense(x, training=False),
                          input_signature=spec)
  run_sparse = tf.function(lambda x: sparse(x, training=False),
                           input_signature=spec)
  for shape in ([1, 32, 32, 3], [2, 24, 40, 3]):
    images = tf.random.stateless_normal(shape, [3, 4])
    # float32: the rounding of matmuls vs convolutions, relative to values
    # up to ~20 in this random network (float64 above shows exactness).
    assert_same(run_sparse(images), run_dense(images), atol=1e-4,
                rtol=1e-4)
  assert always_sparse


@pytest.mark.parametrize("in_function", [False, True],
                         ids=["eager", "tf_function"])
@pytest.mark.parametrize("kernels", KERNELS)
def test_gradients_agree(kernels, always_sparse, in_function):
  dense, sparse = dense_and_sparse("cifar", kernels, depth="2", tau=0.01)
  images = tf.random.stateless_normal([2, 16, 16, 3], [5, 6])
  labels = tf.constant([1, 3])

  def gradients(model):
    with tf.GradientTape() as tape:
      out = model(images, training=False)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels, out["logits"])) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    # A unit that the sparse model skips (nothing active) has no gradient
    # path in eager mode: its gradient is zero.
    return [tf.zeros(v.shape) if g is None else g
            for v, g in zip(model.trainable_variables, grads)]

  # In a tf.function the gradient goes through the units' conds (the
  # skips and the sparse / dense choices) as graph ops.
  run = tf.function(gradients) if in_function else gradients
  dense_grads, sparse_grads = run(dense), run(sparse)
  assert always_sparse
  halting_grads = 0
  for v, d, s in zip(dense.trainable_variables, dense_grads, sparse_grads):
    np.testing.assert_allclose(s, d, rtol=0, atol=1e-4, err_msg=v.path)
    halting_grads += "halting" in v.path and np.abs(d).max() > 0
  assert halting_grads  # The ponder cost reaches the halting weights.


def test_training_runs_dense():
  dense, sparse = dense_and_sparse("cifar", "tf", tau=0.01)
  images = tf.random.stateless_normal([2, 16, 16, 3], [7, 8])
  assert_same(sparse(images, training=True), dense(images, training=True),
              atol=0)


@pytest.mark.parametrize("flops_fraction, dense_above, runs", [
    (0.0, 1.01, 0),   # Everything halts after the first unit: skipped.
    (0.6, 0.0, 0),    # Nothing pays off sparse: dense.
    (0.6, 1.01, 1),   # Sparse.
])
def test_skip_dense_or_sparse(monkeypatch, always_sparse, flops_fraction,
                              dense_above, runs):
  monkeypatch.setattr(halting_unit.HaltingUnit, "dense_above_cost",
                      lambda self: dense_above)
  dense, sparse = dense_and_sparse("cifar", "tf", flops_fraction)
  images = tf.random.stateless_normal([2, 16, 16, 3], [9, 10])
  assert_same(sparse(images, training=False), dense(images, training=False),
              atol=1e-5)
  assert bool(always_sparse) == bool(runs)


def test_block_skips_units_once_every_position_halted(monkeypatch):
  dense, sparse = dense_and_sparse("imagenet", "tf", 0.0)
  masked_calls = []
  original = halting_unit.HaltingUnit.sparse_call

  def counted(self, inputs, residual_mask, **kwargs):
    masked_calls.append(residual_mask is not None)
    return original(self, inputs, residual_mask, **kwargs)

  monkeypatch.setattr(halting_unit.HaltingUnit, "sparse_call", counted)
  images = tf.random.stateless_normal([2, 16, 16, 3], [9, 10])
  assert_same(sparse(images, training=False), dense(images, training=False),
              atol=1e-5)
  # Eager: only the first unit of each block ran.
  assert masked_calls == [False] * len(sparse.blocks)


@pytest.mark.parametrize("kernels", ["tf", "xla"])
def test_unit_with_no_active_position_keeps_the_state(kernels):
  # A unit has no skip of its own (the block skips units once nothing is
  # active): on an empty mask its sparse path runs on empty sets.
  _, sparse = dense_and_sparse("imagenet", kernels)
  unit = sparse.get_layer("block2").units[1]  # It has a halting head.
  state = tf.random.stateless_normal([2, 4, 4, unit.residual_unit.depth],
                                     [3, 4])
  mask = tf.zeros([2, 4, 4, 1])
  update, proba, flops = tf.function(lambda x, m: unit.sparse_call(
      x, m, training=False, sparse_kernels=kernels))(state, mask)
  np.testing.assert_array_equal(sparse_ops.materialize(update.state).map,
                                state)
  assert update.rows.shape[0] == 0 or not np.any(update.rows)
  _, _, expected_flops = unit(state, residual_mask=mask, training=False)
  np.testing.assert_array_equal(flops, expected_flops)
  assert proba.shape == [2, 4, 4, 1]


@pytest.mark.parametrize("family", ["imagenet", "cifar"])
def test_sparse_unit_leaves_its_residual_unscattered(always_sparse, family):
  # ImageNet's halting head reads no output map at inference: the residual
  # stays in the state's rows for the next unit to scatter. CIFAR's (an
  # activation before its taps) reads it: the unit scatters it itself.
  _, sparse = dense_and_sparse(family, "tf")
  unit = sparse.blocks[1].units[1]
  depth = unit.residual_unit.depth
  state = tf.random.stateless_normal([2, 6, 6, depth], [5, 6])
  mask = tf.constant(smooth_mask([2, 6, 6, 1], 0.3, seed=4))
  update, _, _ = tf.function(lambda x, m: unit.sparse_call(
      x, m, training=False, sparse_kernels="tf"))(state, mask)
  expected, _, _ = unit(state, residual_mask=mask, training=False)
  assert update.state.rows.shape[0] == (
      int(np.sum(mask)) if family == "imagenet" else 0)
  materialized = sparse_ops.materialize(update.state)
  assert materialized.rows.shape[0] == 0
  np.testing.assert_allclose(materialized.map, expected, atol=1e-5)
  np.testing.assert_allclose(
      update.state.mean, np.mean(expected, axis=(1, 2), keepdims=True),
      atol=1e-5)
  # A following unit scatters them first: on a zero mask it hands on the
  # materialized state.
  following = sparse.blocks[1].units[2]
  again, _, _ = following.sparse_call(update.state, tf.zeros_like(mask),
                                      training=False, sparse_kernels="tf")
  np.testing.assert_allclose(sparse_ops.materialize(again.state).map,
                             expected, atol=1e-5)


@pytest.mark.parametrize("model_type", ["act", "act_early_stopping"])
def test_act_models_ignore_sparse_execution(model_type):
  keras.utils.set_random_seed(0)
  dense, sparse = [models.cifar_resnet("2", num_classes=5,
                                       model_type=model_type, base_channels=4,
                                       execution=e) for e in ("dense", "sparse")]
  images = tf.random.stateless_normal([2, 16, 16, 3], [11, 12])
  dense(images)
  sparse.build((None, None, None, 3))
  for a, b in zip(sparse.variables, dense.variables):
    a.assign(b)
  assert_same(sparse(images, training=False), dense(images, training=False),
              atol=0)


# CIFAR's halting heads have an activation, ImageNet's take linear taps
# (`SpatialHaltingHead._linear_taps`): both ways of computing them convert.
@pytest.mark.parametrize("family,image_shape", [("cifar", (24, 16)),
                                                ("imagenet", (48, 40))])
def test_saved_model_and_tflite_builtin_ops(tmp_path, always_sparse, family,
                                            image_shape):
  from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top
  _, sparse = dense_and_sparse(family, "tf", depth="2")
  keys = ("logits", "flops", "ponder_cost_map",
          f"{sparse.blocks[1].name}/num_units")

  def serve(images):
    out = sparse(images, training=False)
    return {k.replace("/", "_"): out[k] for k in keys}

  # Keras 3 variables must be exported through Keras's ExportArchive: a
  # tf.saved_model.save of a tf.Module holding them converts to TFLite with
  # garbage weights (TF 2.20).
  archive = keras.export.ExportArchive()
  archive.track(sparse)
  # A free batch size, as TF Serving exports have.
  archive.add_endpoint("serve", serve, input_signature=[
      tf.TensorSpec([None, *image_shape, 3], tf.float32)])
  archive.write_out(str(tmp_path))
  images = tf.random.stateless_normal([2, *image_shape, 3], [11, 12])
  expected = {k: v.numpy() for k, v in serve(images).items()}
  loaded = tf.saved_model.load(str(tmp_path))
  for key, value in loaded.serve(images).items():
    # A few float32 ulps: the graph's kernels are not the eager ones.
    np.testing.assert_allclose(value, expected[key], rtol=1e-6, atol=1e-6,
                               err_msg=key)
  # Builtin ops only; the skip segments' calls are inlined first.
  lite = interpreter.Interpreter(model_content=tflite.convert_saved_model(
      str(tmp_path), signature_key="serve"))
  lite.resize_tensor_input(
      lite.get_signature_runner("serve").get_input_details()["images"][
          "index"], images.shape)
  runner = lite.get_signature_runner("serve")
  out = runner(images=images.numpy())
  for key, value in expected.items():
    if value.dtype.kind in "iu" or "num_units" in key:
      np.testing.assert_array_equal(out[key], value, err_msg=key)
    else:
      # The tiny ImageNet model's logits reach 1e6: float32 rounding.
      np.testing.assert_allclose(out[key], value, rtol=1e-5, atol=1e-4,
                                 err_msg=key)
  assert always_sparse


def test_dilate_mask_is_the_original_max_pool():
  mask = tf.cast(tf.random.stateless_uniform([3, 7, 5, 1], [1, 3]) > 0.7,
                 tf.float32)
  np.testing.assert_array_equal(masking.dilate_mask(mask),
                                tf.nn.max_pool2d(mask, 3, 1, "SAME"))


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 100, 1000, 4097, 65537])
def test_geometric_capacity(count):
  capacity = int(sparse_ops.geometric_capacity(tf.constant(count)))
  step = 2 ** max(count.bit_length() - 4, 0)
  assert capacity % step == 0 and count <= capacity < count + step
  assert capacity <= 1.125 * count


@pytest.mark.parametrize("count,channels,compiled", [
    (0, 3, False), (5, 3, False), (40, 1, False), (6000, 1, True),
    (400, 256, True)])
def test_scatter_nd_add_is_the_plain_op(monkeypatch, count, channels,
                                        compiled):
  """Both branches, duplicate indices included, eager and in a graph."""
  assert sparse_ops.scatter_compiled(count, channels) == compiled
  rng = np.random.default_rng(count)
  x = tf.constant(rng.normal(size=(2, 9, 7, channels)), tf.float32)
  indices = tf.constant(np.stack([rng.integers(0, n, count)
                                  for n in (2, 9, 7)], 1), tf.int32)
  updates = tf.constant(rng.normal(size=(count, channels)), tf.float32)
  expected = tf.tensor_scatter_nd_add(x, indices, updates)
  compiled_calls = []
  xla_scatter = sparse_ops.xla_scatter_nd_add
  monkeypatch.setattr(sparse_ops, "xla_scatter_nd_add",
                      lambda *args: compiled_calls.append(args[1].shape)
                      or xla_scatter(*args))
  # Eagerly, tf.cond runs the branch taken alone.
  np.testing.assert_allclose(sparse_ops.scatter_nd_add(x, indices, updates),
                             expected, rtol=1e-6, atol=1e-6)
  assert compiled_calls == ([[sparse_ops.geometric_capacity(count), 3]]
                            if compiled else [])
  scatter = tf.function(sparse_ops.scatter_nd_add, input_signature=[
      tf.TensorSpec([None, None, None, channels]),
      tf.TensorSpec([None, 3], tf.int32),
      tf.TensorSpec([None, channels])])
  np.testing.assert_allclose(scatter(x, indices, updates), expected,
                             rtol=1e-6, atol=1e-6)
