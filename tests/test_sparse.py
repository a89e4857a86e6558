"""Sparse SACT execution: the same outputs, FLOPs and gradients as dense."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from sact_tf import models
from sact_tf.export import tflite
from sact_tf.sparse import active_set
from sact_tf.sparse import block
from sact_tf.sparse import gather
from sact_tf.sparse import map_state
from sact_tf.sparse import residual_rows
from sact_tf.sparse import scatter
from sact_tf.sparse import unit_step
from sact_tf.sparse import SparseConfig
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
    active = active_set.active_set(tf.constant(mask))
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
    active = active_set.active_set(tf.constant(mask), num_buckets=8)
    # Capacity: 6 rounded up to a multiple of ceil(16 / 8) = 2.
    assert active.indices.shape[0] == 6 and active.count == 6
    active = active_set.active_set(tf.constant(mask), num_buckets=4)
    assert active.indices.shape[0] == 8 and active.count == 6
    np.testing.assert_array_equal(active.valid, [True] * 6 + [False] * 2)
    np.testing.assert_array_equal(active.padded_rows[6:], 0)
    np.testing.assert_array_equal(active.rows[6:], 0)
    assert [int(active_set.bucket_capacity(c, 100, 8)) for c in
            (0, 1, 13, 14, 100)] == [13, 13, 13, 26, 104]

  @pytest.mark.parametrize("kernel_size", [1, 3])
  def test_gather_patches(self, kernel_size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=[2, 5, 4, 3]).astype(np.float32)
    mask = tf.constant(smooth_mask([2, 5, 4, 1], 0.5))
    active = active_set.active_set(mask, num_buckets=4)
    patches = gather.gather_patches(
        gather.to_padded(x), active, tf.shape(x), kernel_size)
    expected = tf.image.extract_patches(
        x, [1, kernel_size, kernel_size, 1], [1] * 4, [1] * 4, "SAME")
    expected = tf.gather_nd(expected, active.indices[:active.count])
    np.testing.assert_array_equal(patches[:active.count], expected)
    # Dummy entries read the zero ring.
    np.testing.assert_array_equal(patches[active.count:], 0)
    # The same patches from the rows of a set of a map that is zero
    # elsewhere: dummies of both sets read zeros.
    source = active_set.active_set(
        tf.constant(smooth_mask([2, 5, 4, 1], 0.6, seed=4)), num_buckets=4)
    rows = tf.concat([tf.gather_nd(x, source.indices[:source.count]),
                      tf.fill([source.indices.shape[0] - source.count, 3],
                              7.0)], 0)
    masked = x * source_mask(source, x.shape)
    np.testing.assert_array_equal(
        gather.gather_neighbours(rows, gather.neighbour_entries(
            source, active, tf.shape(x), kernel_size)),
        gather.gather_patches(gather.to_padded(masked), active,
                                  tf.shape(x), kernel_size))

  def test_sum_taps_is_a_one_channel_conv(self):
    rng = np.random.default_rng(2)
    x = rng.normal(size=[2, 6, 5, 4]).astype(np.float32)
    kernel = rng.normal(size=[3, 3, 4, 1]).astype(np.float32)
    mask = tf.constant(smooth_mask([2, 6, 5, 1], 0.4))
    active = active_set.active_set(mask)
    taps = tf.reshape(tf.matmul(tf.reshape(x, [-1, 4]),
                                tf.transpose(tf.reshape(kernel, [9, 4]))),
                      [2, 6, 5, 9])
    result = gather.sum_taps(
        gather.to_padded(taps),
        gather.neighbour_rows(active, tf.shape(x), 3))
    conv = tf.nn.conv2d(x, kernel, 1, "SAME")
    np.testing.assert_allclose(
        result, tf.gather_nd(conv[..., 0], active.indices), atol=1e-5)
    # The taps of the entries of a set, the others zero: the conv of the
    # input masked to the set.
    source = active_set.active_set(tf.constant(smooth_mask([2, 6, 5, 1], 0.7,
                                                           seed=3)))
    result = gather.sum_taps(
        gather.with_zero_row(tf.gather_nd(taps, source.indices)),
        gather.neighbour_entries(source, active, tf.shape(x), 3))
    masked_conv = tf.nn.conv2d(x * source_mask(source, x.shape), kernel, 1,
                               "SAME")
    np.testing.assert_allclose(
        result, tf.gather_nd(masked_conv[..., 0], active.indices), atol=1e-5)
    np.testing.assert_allclose(gather.sum_taps_map(taps), conv,
                               atol=1e-5)

  @pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6),
                                           (np.float64, 1e-14)])
  def test_spatial_mean(self, dtype, atol):
    run = tf.function(map_state.spatial_mean)
    for shape in ([3, 5, 7, 4], [1, 2, 3, 4]):
      x = np.random.default_rng(0).normal(size=shape).astype(dtype)
      mean = run(x)
      assert mean.dtype == dtype
      np.testing.assert_allclose(mean, x.mean(axis=(1, 2), keepdims=True),
                                 rtol=0, atol=atol)

  def test_scatters(self):
    rows = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    active = active_set.ActiveSet(
        indices=tf.constant([[0, 1, 1], [1, 0, 1], [0, 0, 0]]),
        rows=tf.constant([3, 5, 0]),
        padded_rows=tf.constant([(0 + 2) * 4 + 2, (4 + 1) * 4 + 2, 0]),
        ordinals=tf.fill([2 * 4 * 4], 3),  # Not read by the scatters.
        valid=tf.constant([True, True, False]), count=tf.constant(2),
        has_dummies=True)
    shape = tf.constant([2, 2, 2, 2])
    result = scatter.scatter_map(rows, active, shape,
                                 SparseConfig()).numpy()
    expected = np.zeros([2, 2, 2, 2], np.float32)
    expected[0, 1, 1] = [1, 2]
    expected[1, 0, 1] = [3, 4]
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(gather.gather_rows(expected, active),
                                  [[1, 2], [3, 4], [0, 0]])

  def test_ordinals(self):
    mask = np.zeros([2, 2, 3, 1], np.float32)
    mask[0, 1, 0] = mask[0, 1, 2] = mask[1, 0, 1] = 1
    active = active_set.active_set(tf.constant(mask), num_buckets=2)
    assert active.indices.shape[0] == 6  # 3 entries, 3 dummies.
    # Padded layout 4 x 5 per image; 6 (the capacity) where no entry.
    expected = np.full([2, 4, 5], 6)
    expected[0, 2, 1], expected[0, 2, 3], expected[1, 1, 2] = 0, 1, 2
    np.testing.assert_array_equal(active.ordinals, expected.reshape(-1))


def dense_and_sparse(family, sparse_config, flops_fraction=0.6, depth=None,
                     **kwargs):
  """A dense and a sparse SACT model with the same weights.

  The weights are random, with batch norm statistics and one halting bias
  set so that the model spends `flops_fraction` of its maximum FLOPs.
  """
  depth = depth or {"cifar": "3", "imagenet": "2_3_2_2"}[family]
  keras.utils.set_random_seed(0)
  dense = helpers.tiny_model(family, depth=depth, execution="dense", **kwargs)
  sparse = helpers.tiny_model(family, depth=depth, execution="sparse",
                              sparse_config=sparse_config, **kwargs)
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


class SparseRuns:
  """A `SparseConfig` that always runs sparse, and the residual rows runs.

  Attributes:
    path: `"gathered"` or `"whole_map"`, how the first conv runs.
    calls: list of the residual units' names, one per `residual_rows` call.
  """

  def __init__(self, path):
    self.path = path
    self.calls = []

  def config(self, kernels="tf"):
    return SparseConfig(kernels=kernels, **helpers.ALWAYS_SPARSE[self.path])


@pytest.fixture(params=["gathered", "whole_map"])
def always_sparse(monkeypatch, request):
  """Sparse kernels with no dense fallback, their runs counted.

  Each test runs twice: the first conv and the halting head's taps on the
  gathered 3x3 dilation, and on the whole map.
  """
  runs = SparseRuns(request.param)
  original = residual_rows.residual_rows

  def counted(unit, inputs, active, dilated, *args, **kwargs):
    runs.calls.append(unit.name)
    if tf.executing_eagerly():  # A graph traces both.
      assert (dilated is None) == (runs.path == "whole_map")
    return original(unit, inputs, active, dilated, *args, **kwargs)

  monkeypatch.setattr(residual_rows, "residual_rows", counted)
  return runs


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
  dense, sparse = dense_and_sparse(family, always_sparse.config(kernels))
  images = tf.random.stateless_normal([3, 48, 40, 3], [1, 2], dtype=tf.float64)
  dense_out = dense(images, training=False)
  sparse_out = sparse(images, training=False)
  assert dense_out["logits"].dtype == tf.float64
  # Halting really varies: positions of a block run different numbers of
  # units.
  assert any(len(np.unique(dense_out[f"{b.name}/num_units"])) > 1
             for b in dense.blocks)
  assert always_sparse.calls, "the sparse kernels did not run"
  assert_same(sparse_out, dense_out, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kernels", KERNELS)
def test_sparse_in_tf_function_with_dynamic_shapes(kernels, always_sparse):
  dense, sparse = dense_and_sparse("cifar", always_sparse.config(kernels),
                                   depth="2")
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
  assert always_sparse.calls


@pytest.mark.parametrize("in_function", [False, True],
                         ids=["eager", "tf_function"])
@pytest.mark.parametrize("kernels", KERNELS)
def test_gradients_agree(kernels, always_sparse, in_function):
  dense, sparse = dense_and_sparse("cifar", always_sparse.config(kernels),
                                   depth="2", tau=0.01)
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
  assert always_sparse.calls
  halting_grads = 0
  for v, d, s in zip(dense.trainable_variables, dense_grads, sparse_grads):
    np.testing.assert_allclose(s, d, rtol=0, atol=1e-4, err_msg=v.path)
    halting_grads += "halting" in v.path and np.abs(d).max() > 0
  assert halting_grads  # The ponder cost reaches the halting weights.


def test_training_runs_dense():
  dense, sparse = dense_and_sparse("cifar", {"kernels": "tf"}, tau=0.01)
  images = tf.random.stateless_normal([2, 16, 16, 3], [7, 8])
  assert_same(sparse(images, training=True), dense(images, training=True),
              atol=0)


# Dense above a cost of 0: every unit with an active position runs dense.
ALWAYS_DENSE = {"dense_above_cost": ((2**31, 0.0),)}


@pytest.mark.parametrize("flops_fraction, choice, runs", [
    (0.0, "sparse", 0),   # Everything halts after the first unit: skipped.
    (0.6, "dense", 0),    # Nothing pays off sparse: dense.
    (0.6, "sparse", 1),   # Sparse.
])
def test_skip_dense_or_sparse(always_sparse, flops_fraction, choice, runs):
  config = (always_sparse.config() if choice == "sparse" else
            SparseConfig(kernels="tf", **ALWAYS_DENSE))
  dense, sparse = dense_and_sparse("cifar", config, flops_fraction)
  images = tf.random.stateless_normal([2, 16, 16, 3], [9, 10])
  assert_same(sparse(images, training=False), dense(images, training=False),
              atol=1e-5)
  assert bool(always_sparse.calls) == bool(runs)


def test_block_skips_units_once_every_position_halted(monkeypatch):
  dense, sparse = dense_and_sparse("imagenet", {"kernels": "tf"}, 0.0)
  calls = []
  for name in ("dense_unit", "sparse_unit"):
    original = getattr(unit_step, name)
    monkeypatch.setattr(
        unit_step, name,
        lambda *args, n=name, f=original, **kwargs: calls.append(n) or f(
            *args, **kwargs))
  images = tf.random.stateless_normal([2, 16, 16, 3], [9, 10])
  assert_same(sparse(images, training=False), dense(images, training=False),
              atol=1e-5)
  # Eager: only the first unit of each block ran.
  assert calls == ["dense_unit"] * len(sparse.blocks)


@pytest.mark.parametrize("halting_unit", [1, 3, 4, 6])
def test_segments_skip_the_rest_of_the_block(monkeypatch, halting_unit):
  # block2 has six units: segments [2], [3, 4], [5, 6] (one-based). Every
  # position halts at `halting_unit`: after the first unit, at the start
  # or the end of a segment, or at the last unit; only the units up to it
  # run, in a graph too.
  dense, sparse = [helpers.tiny_model("imagenet", depth="1_6_1_1",
                                      execution=execution)
                   for execution in ("dense", "sparse")]
  images = tf.random.stateless_normal([2, 32, 32, 3], [9, 10])
  dense(images)
  for v in dense.variables:
    if "block2/" in v.path and "halting_proba/local_conv/biases" in v.path:
      halts = f"unit_{halting_unit}/" in v.path
      v.assign(tf.fill(v.shape, 1e4 if halts else -1e4))
  sparse.build((None, None, None, 3))
  for a, b in zip(sparse.variables, dense.variables):
    a.assign(b)
  runs = tf.Variable(0)
  for name in ("dense_unit", "sparse_unit"):
    original = getattr(unit_step, name)

    def counted(*args, f=original, **kwargs):
      runs.assign_add(1)
      return f(*args, **kwargs)

    monkeypatch.setattr(unit_step, name, counted)
  run = tf.function(lambda x: sparse(x, training=False))
  out = run(images)
  # The first unit of each of the four blocks, and block2's up to the halt.
  assert int(runs.numpy()) == 3 + halting_unit
  expected = dense(images, training=False)
  np.testing.assert_array_equal(out["block2/num_units"],
                                np.full([2, 4, 4], halting_unit))
  assert_same(out, expected, atol=1e-4, rtol=1e-4)
  # Each segment runs as one call that TensorFlow does not inline (XLA
  # functions, the compiled scatters, carry the same mark).
  library = run.get_concrete_function(images).graph.as_graph_def().library
  assert sum(block.NOINLINE_ATTRIBUTE in f.attr and
             "_XlaMustCompile" not in f.attr for f in library.function) == 3


def test_skip_segments_double():
  assert block.skip_segments(1) == []
  assert block.skip_segments(2) == [[1]]
  assert block.skip_segments(4) == [[1], [2, 3]]
  assert block.skip_segments(23) == [[1], [2, 3], [4, 5, 6, 7],
                                     list(range(8, 16)), list(range(16, 23))]


def sparse_unit(unit, config, state, mask, gather_dilation=True):
  """`unit_step.sparse_unit` on the active positions of `mask`, in a graph."""
  def run(state, mask):
    active, dilated = unit_step.active_sets(
        config, mask, active_set.dilate_mask(mask), gather_dilation)
    return unit_step.sparse_unit_kernel(unit, config)(
        map_state.from_map(state), active, dilated, False)
  return tf.function(run)(state, mask)


@pytest.mark.parametrize("kernels", ["tf", "xla"])
def test_unit_with_no_active_position_keeps_the_state(kernels):
  # The block skips units once nothing is active; a unit run on an empty
  # mask runs on empty sets and changes nothing.
  config = SparseConfig(kernels=kernels)
  _, sparse = dense_and_sparse("imagenet", config)
  unit = sparse.get_layer("block2").units[1]  # It has a halting head.
  state = tf.random.stateless_normal([2, 4, 4, unit.residual_unit.depth],
                                     [3, 4])
  mask = tf.zeros([2, 4, 4, 1])
  new_state, rows, proba = sparse_unit(unit, config, state, mask)
  np.testing.assert_array_equal(
      map_state.materialize(new_state, config).map, state)
  assert rows.shape[0] == 0 or not np.any(rows)
  assert proba.shape == [2, 4, 4, 1]
  # What the block counts for a unit it skips: the masked call's FLOPs.
  _, _, expected_flops = unit(state, residual_mask=mask, training=False)
  np.testing.assert_array_equal(unit.masked_flops(tf.shape(state), mask),
                                expected_flops)


@pytest.mark.parametrize("family", ["imagenet", "cifar"])
def test_sparse_unit_leaves_its_residual_unscattered(always_sparse, family):
  # ImageNet's halting head reads no output map at inference: the residual
  # stays in the state's rows for the next unit to scatter. CIFAR's (an
  # activation before its taps) reads it: the unit scatters it itself.
  config = always_sparse.config()
  _, sparse = dense_and_sparse(family, config)
  unit = sparse.blocks[1].units[1]
  depth = unit.residual_unit.depth
  state = tf.random.stateless_normal([2, 6, 6, depth], [5, 6])
  mask = tf.constant(smooth_mask([2, 6, 6, 1], 0.3, seed=4))
  new_state, _, _ = sparse_unit(unit, config, state, mask,
                                always_sparse.path == "gathered")
  expected, _, _ = unit(state, residual_mask=mask, training=False)
  assert new_state.rows.shape[0] == (
      int(np.sum(mask)) if family == "imagenet" else 0)
  materialized = map_state.materialize(new_state, config)
  assert materialized.rows.shape[0] == 0
  np.testing.assert_allclose(materialized.map, expected, atol=1e-5)
  np.testing.assert_allclose(
      new_state.mean, np.mean(expected, axis=(1, 2), keepdims=True),
      atol=1e-5)


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
  _, sparse = dense_and_sparse(family, always_sparse.config(),
                               depth="2" if family == "cifar" else None)
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
  assert always_sparse.calls


def test_dilate_mask_is_the_original_max_pool():
  mask = tf.cast(tf.random.stateless_uniform([3, 7, 5, 1], [1, 3]) > 0.7,
                 tf.float32)
  np.testing.assert_array_equal(active_set.dilate_mask(mask),
                                tf.nn.max_pool2d(mask, 3, 1, "SAME"))


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 100, 1000, 4097, 65537])
def test_geometric_capacity(count):
  capacity = int(scatter.geometric_capacity(tf.constant(count)))
  step = 2 ** max(count.bit_length() - 4, 0)
  assert capacity % step == 0 and count <= capacity < count + step
  assert capacity <= 1.125 * count


@pytest.mark.parametrize("count,channels,compiled", [
    (0, 3, False), (5, 3, False), (40, 1, False), (6000, 1, True),
    (400, 256, True)])
def test_scatter_nd_add_is_the_plain_op(monkeypatch, count, channels,
                                        compiled):
  """Both branches, duplicate indices included, eager and in a graph.

  The default rule compiles the large scatters and not the small ones;
  whichever it picks, the result is the plain op's.
  """
  config = SparseConfig()
  rng = np.random.default_rng(count)
  x = tf.constant(rng.normal(size=(2, 9, 7, channels)), tf.float32)
  indices = tf.constant(np.stack([rng.integers(0, n, count)
                                  for n in (2, 9, 7)], 1), tf.int32)
  updates = tf.constant(rng.normal(size=(count, channels)), tf.float32)
  expected = tf.tensor_scatter_nd_add(x, indices, updates)
  compiled_calls = []
  xla_scatter = scatter.xla_scatter_nd_add
  monkeypatch.setattr(scatter, "xla_scatter_nd_add",
                      lambda *args: compiled_calls.append(args[1].shape)
                      or xla_scatter(*args))
  # Eagerly, tf.cond runs the branch taken alone.
  np.testing.assert_allclose(scatter.scatter_nd_add(x, indices, updates,
                                                    config),
                             expected, rtol=1e-6, atol=1e-6)
  assert compiled_calls == ([[scatter.geometric_capacity(count), 3]]
                            if compiled else [])
  run = tf.function(lambda *args: scatter.scatter_nd_add(*args, config),
                    input_signature=[
                        tf.TensorSpec([None, None, None, channels]),
                        tf.TensorSpec([None, 3], tf.int32),
                        tf.TensorSpec([None, channels])])
  np.testing.assert_allclose(run(x, indices, updates), expected,
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("min_size, compiled", [(1, True), (10**9, False)])
def test_scatter_rule_is_configured(monkeypatch, min_size, compiled):
  config = SparseConfig(xla_scatter_min_size=min_size)
  compiled_calls = []
  xla_scatter = scatter.xla_scatter_nd_add
  monkeypatch.setattr(scatter, "xla_scatter_nd_add",
                      lambda *args: compiled_calls.append(1)
                      or xla_scatter(*args))
  x = tf.zeros([1, 4, 4, 2])
  result = scatter.scatter_nd_add(x, tf.constant([[0, 1, 2]]),
                                  tf.ones([1, 2]), config)
  assert float(tf.reduce_sum(result)) == 2.0
  assert bool(compiled_calls) == compiled


def test_sparse_config_round_trips_and_validates():
  config = SparseConfig(kernels="xla", num_buckets=4,
                        dense_above_cost=[[64, 0.5], [512, 0.9]])
  assert config.dense_above(64) == 0.5 and config.dense_above(65) == 0.9
  assert config.dense_above(1024) == float("inf")
  assert SparseConfig.create(config.to_dict()) == config
  model = helpers.tiny_model("cifar", execution="sparse",
                             sparse_config=config)
  restored = type(model).from_config(model.get_config())
  assert restored.sparse_config == config
  assert restored.blocks[0].sparse_config == config
  for bad, needle in [({"kernels": "cuda"}, "'cuda'"),
                      ({"num_buckets": 0}, "num_buckets=0"),
                      ({"dense_above_cost": [[512, 0.8], [256, 0.7]]},
                       "dense_above_cost"),
                      ({"speed": 2}, "speed")]:
    with pytest.raises(ValueError, match=needle):
      SparseConfig.create(bad)
