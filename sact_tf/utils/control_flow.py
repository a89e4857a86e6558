"""`tf.cond` whose untaken branch costs nothing at run time (sparse SACT)."""

import tensorflow as tf
# The only way to keep one `If` op from being lowered; `tf.cond` has no
# argument for it (TF 2.20).
from tensorflow.python.ops import control_flow_util_v2

_IF_OPS = ("If", "StatelessIf")


def unlowered_cond(pred, true_fn, false_fn):
  """`tf.cond(pred, true_fn, false_fn)`, run as a function call in graphs.

  In a `tf.function`, TensorFlow lowers the `If` op of a `tf.cond` to
  Switch / Merge nodes in the enclosing graph, and the executor then visits
  every node of the untaken branch to propagate its deadness. For the branch
  of a sparse unit (hundreds of nodes, with its own conds), that cost about
  0.4 ms per skipped unit on a 2-core CPU: the 29 skipped units of a sparse
  ResNet-101 whose positions all halt after the first unit of each block
  took 10 ms of its 46 ms. Kept as an `If` op, only the taken branch runs, as
  a function (tens of microseconds per call). Same values, gradients
  (`tf.cond`'s), SavedModel and TFLite conversion (`tfl.if`); in eager mode
  this is `tf.cond`.

  Args:
    pred: bool scalar tensor.
    true_fn, false_fn: callables returning the same structure of tensors.

  Returns:
    The result of the branch taken, as `tf.cond`.
  """
  result = tf.cond(pred, true_fn, false_fn)
  outputs = tf.nest.flatten(result)
  if not outputs or tf.executing_eagerly():
    return result
  # `tf.cond` returns an identity of each output of its `If` op.
  if_op = outputs[0].op.inputs[0].op
  if if_op.type not in _IF_OPS:
    raise RuntimeError(f"expected tf.cond to build an If op, found "
                       f"{if_op.type!r} ({if_op.name!r})")
  control_flow_util_v2.maybe_set_lowering_attr(if_op, False)
  return result
