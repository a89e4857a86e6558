"""Tests of sact_tf.act, ported from the original `act_test.py`."""

import numpy as np
import pytest
import tensorflow as tf

from sact_tf import act


def run_act(fn, halting_probas, unit_outputs=None):
  """Runs an ACT function on scalar units; returns outputs, cost grad, calls."""
  batch, max_units = np.shape(halting_probas)
  if unit_outputs is None:
    unit_outputs = [list(range(max_units))] * batch
  outputs_tf = tf.constant(unit_outputs, tf.float32)
  probas_tf = tf.Variable(halting_probas, dtype=tf.float32)
  calls = []

  def unit(_, unit_idx):
    calls.append(unit_idx)
    return (outputs_tf[:, unit_idx:unit_idx + 1],
            probas_tf[:, unit_idx:unit_idx + 1],
            tf.fill([batch], tf.constant(2, tf.int64)))

  with tf.GradientTape() as tape:
    cost, num_units, flops, distrib, outputs = fn(
        tf.zeros([batch, 1]), unit, max_units)
  grad = tape.gradient(cost, probas_tf)
  grad = np.zeros([batch, max_units]) if grad is None else grad.numpy()
  return (cost.numpy(), num_units.numpy(), flops.numpy(), distrib.numpy(),
          outputs.numpy(), grad, calls)


class TestAdaptiveComputationTime:

  def test_output_size(self):
    h = tf.sigmoid(tf.random.normal([5, 7]))
    cost, num_units, distrib = act.adaptive_computation_time(h)
    assert cost.shape == (5,) and num_units.shape == (5,)
    assert distrib.shape == (5, 8)
    np.testing.assert_allclose(tf.reduce_sum(distrib, 1), np.ones(5),
                               atol=1e-6)
    np.testing.assert_allclose(cost, num_units.numpy() + distrib.numpy()[
        np.arange(5), num_units.numpy() - 1], atol=1e-6)

  def test_equal_values_in_batch(self):
    h = tf.tile(tf.sigmoid(tf.random.normal([1, 7])), [2, 1])
    cost, num_units, distrib = act.adaptive_computation_time(h)
    assert cost[0] == cost[1] and num_units[0] == num_units[1]
    np.testing.assert_array_equal(distrib[0], distrib[1])

  @pytest.mark.parametrize("h, cost, units, distrib, grad", [
      ([0.999] * 4, 2.0, 1, [1.] + [0.] * 4, [0.] * 4),
      ([0.01, 0.5, 0.6, 0.7], 3.49, 3, [0.01, 0.5, 0.49, 0., 0.],
       [-1., -1., 0., 0.]),
      ([0.01] * 4, 5.96, 5, [0.01] * 4 + [0.96], [-1.] * 4),
  ])
  def test_stops(self, h, cost, units, distrib, grad):
    h = tf.Variable([h])
    with tf.GradientTape() as tape:
      cost_out, units_out, distrib_out = act.adaptive_computation_time(h)
    np.testing.assert_allclose(cost_out, [cost], rtol=1e-6)
    np.testing.assert_array_equal(units_out, [units])
    np.testing.assert_allclose(distrib_out, [distrib], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(cost_out, h), [grad])

  def test_threshold_is_inclusive(self):
    # Halts where the float32 cumulative sum reaches exactly 1 - eps.
    _, num_units, _ = act.adaptive_computation_time(
        tf.constant([[0.5, 0.49, 0.5]]), eps=0.01)
    assert num_units.numpy()[0] == 2

  def test_rejects_bad_eps(self):
    with pytest.raises(ValueError, match="eps=1.5"):
      act.adaptive_computation_time(tf.zeros([1, 2]), eps=1.5)


WRAPPERS = [act.adaptive_computation_time_wrapper,
            act.adaptive_computation_early_stopping]


@pytest.mark.parametrize("fn", WRAPPERS)
class TestActWrappers:

  def test_equal_values_in_batch(self, fn):
    cost, units, flops, distrib, outputs, grad, _ = run_act(
        fn, [[0.999] * 5] * 2)
    assert cost[0] == cost[1] and units[0] == units[1]
    assert flops[0] == flops[1]
    np.testing.assert_allclose(distrib[0], distrib[1])
    np.testing.assert_allclose(outputs[0], outputs[1])
    np.testing.assert_allclose(grad[0], grad[1])

  @pytest.mark.parametrize(
      "h, cost, units, flops, distrib, output, grad, calls", [
          ([0.999] + [0.5] * 4, 2.0, 1, 2, [1.] + [0.] * 4, 0., [0.] * 5, 1),
          ([0.01, 0.5, 0.6, 0.7, 0.8], 3.49, 3, 6, [0.01, 0.5, 0.49, 0., 0.],
           1.48, [-1., -1., 0., 0., 0.], 3),
          ([0.01] * 5, 5.96, 5, 10, [0.01] * 4 + [0.96], 3.9,
           [-1.] * 4 + [0.], 5),
      ])
  def test_stops(self, fn, h, cost, units, flops, distrib, output, grad,
                 calls):
    (cost_out, units_out, flops_out, distrib_out, outputs_out, grad_out,
     calls_out) = run_act(fn, [h])
    np.testing.assert_allclose(cost_out, [cost], rtol=1e-6)
    np.testing.assert_array_equal(units_out, [units])
    np.testing.assert_array_equal(flops_out, [flops])
    np.testing.assert_allclose(distrib_out, [distrib], atol=1e-6)
    np.testing.assert_allclose(outputs_out, [[output]], rtol=1e-6)
    np.testing.assert_allclose(grad_out, [grad], atol=1e-6)
    # The wrapper runs every unit; early stopping only those still needed.
    expected_calls = 5 if fn is act.adaptive_computation_time_wrapper else (
        calls)
    assert len(calls_out) == expected_calls

  def test_identity_units_give_inputs(self, fn):
    inputs = tf.random.normal([2, 3])

    def unit(x, _):
      # The first image runs for two units, the second for four.
      return x, tf.constant([[0.7], [0.3]]), tf.zeros([2], tf.int64)

    outputs = fn(inputs, unit, 5)[-1]
    np.testing.assert_allclose(outputs, inputs, rtol=1e-6)

  def test_single_unit(self, fn):
    cost, units, _, distrib, outputs, _, _ = run_act(fn, [[0.3]])
    np.testing.assert_allclose(cost, [2.0])
    np.testing.assert_array_equal(units, [1])
    np.testing.assert_allclose(distrib, [[1.0]])
    np.testing.assert_allclose(outputs, [[0.0]])


def test_early_stopping_skips_units_in_a_graph():
  calls = tf.Variable(0)

  def unit(x, _):
    calls.assign_add(1)
    return x, tf.fill([2, 1], 0.999), tf.zeros([2], tf.int64)

  @tf.function
  def run(x):
    return act.adaptive_computation_early_stopping(x, unit, 6)

  run(tf.zeros([2, 4]))
  assert calls.numpy() == 1


class TestSpatiallyAdaptiveComputationTime:

  def test_simple(self):
    sh = [1, 1, 2, 1]
    unit_outputs = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    halting_probas = [[0.9, 0.1], [0.5, 0.1], [0.8, 0.1]]  # The last unused.
    masks = []

    def unit(_, unit_idx, residual_mask):
      masks.append(residual_mask)
      return (tf.reshape(tf.constant(unit_outputs[unit_idx]), sh),
              tf.reshape(tf.constant(halting_probas[unit_idx]), sh),
              tf.constant([2], tf.int64))

    cost, num_units, flops, distrib, outputs = (
        act.spatially_adaptive_computation_time(
            tf.random.normal(sh), unit, 3))
    np.testing.assert_allclose(cost, [[[2.1, 3.8]]], rtol=1e-6)
    np.testing.assert_array_equal(num_units, [[[2, 3]]])
    np.testing.assert_array_equal(flops, [6])
    np.testing.assert_allclose(
        distrib, [[[[0.9, 0.1, 0.0], [0.1, 0.1, 0.8]]]], atol=1e-6)
    np.testing.assert_allclose(outputs, [[[[1.2], [5.4]]]], rtol=1e-6)
    assert masks[0] is None
    np.testing.assert_array_equal(masks[1], [[[[1.], [1.]]]])
    np.testing.assert_array_equal(masks[2], [[[[0.], [1.]]]])

  def test_identity_units_give_inputs(self):
    max_units = 5
    inputs = tf.random.normal([2, 5, 3, 3])
    # Probabilities of the first four units that sum to one, then zeros.
    probas = tf.nn.softmax(tf.random.normal([max_units - 1, 30]))
    probas = tf.concat([tf.reshape(probas, [max_units - 1, 2, 5, 3]),
                        tf.zeros([1, 2, 5, 3])], 0)

    def unit(x, unit_idx, residual_mask):
      return (x, probas[unit_idx][..., None], tf.zeros([2], tf.int64))

    outputs = act.spatially_adaptive_computation_time(
        inputs, unit, max_units)[-1]
    np.testing.assert_allclose(outputs, inputs, rtol=1e-5)

  def test_matches_act_per_position(self):
    # Every position is an independent ACT problem.
    rng = np.random.default_rng(0)
    probas = rng.uniform(0, 0.6, size=[3, 4, 2, 4]).astype(np.float32)

    def unit(x, unit_idx, residual_mask=None):
      return (x, probas[..., unit_idx:unit_idx + 1],
              tf.zeros([3], tf.int64))

    cost, num_units, _, distrib, _ = act.spatially_adaptive_computation_time(
        tf.zeros([3, 4, 2, 1]), unit, 4)
    flat_cost, flat_units, flat_distrib = act.adaptive_computation_time(
        probas[..., :3].reshape([-1, 3]))
    np.testing.assert_allclose(cost, tf.reshape(flat_cost, [3, 4, 2]),
                               atol=1e-6)
    np.testing.assert_array_equal(num_units,
                                  tf.reshape(flat_units, [3, 4, 2]))
    np.testing.assert_allclose(distrib, tf.reshape(flat_distrib, [3, 4, 2, 4]),
                               atol=1e-6)
