"""unlowered_cond: tf.cond's values, kept as an If op in graphs."""

import numpy as np
import tensorflow as tf

from sact_tf.utils.control_flow import unlowered_cond


def _cond(x):
  return unlowered_cond(tf.reduce_sum(x) > 0, lambda: (x * 2, x[0]),
                        lambda: (x - 1, x[1]))


def test_values_of_the_branch_taken():
  x = tf.constant([1.0, -3.0])
  for fn in (_cond, tf.function(_cond)):
    doubled, first = fn(-x)
    np.testing.assert_array_equal(doubled, [-2.0, 6.0])
    assert float(first) == -1.0
    shifted, second = fn(x)
    np.testing.assert_array_equal(shifted, [0.0, -4.0])
    assert float(second) == -3.0


def test_if_op_is_not_lowered():
  graph = tf.function(_cond).get_concrete_function(
      tf.TensorSpec([2], tf.float32)).graph
  ifs = [op for op in graph.get_operations()
         if op.type in ("If", "StatelessIf")]
  assert len(ifs) == 1
  assert ifs[0].get_attr("_lower_using_switch_merge") is False
  plain = tf.function(lambda x: tf.cond(x[0] > 0, lambda: x, lambda: -x))
  plain_ifs = [op for op in plain.get_concrete_function(
      tf.TensorSpec([2], tf.float32)).graph.get_operations()
               if op.type in ("If", "StatelessIf")]
  assert plain_ifs[0].get_attr("_lower_using_switch_merge") is True


def test_gradient_through_the_if_op():
  x = tf.constant([1.0, 2.0])

  @tf.function
  def grad(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tf.reduce_sum(unlowered_cond(x[0] > 0, lambda: x * x,
                                       lambda: 3 * x))
    return tape.gradient(y, x)

  np.testing.assert_array_equal(grad(x), [2.0, 4.0])
  np.testing.assert_array_equal(grad(-x), [3.0, 3.0])
