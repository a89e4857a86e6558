"""The per-position layers of a unit (batch norm, convolution) on rows.

A convolution at `K` positions is one matmul of their patches `[K, k*k*C]`
(`gather.gather_patches`) with the kernel; batch norm and activations act
per channel, so they apply to rows as they are. These functions read the
weights of the Keras layers (`keras.layers.BatchNormalization`,
`sact_tf.layers.MaskedConv2D`) and give what those layers give at the same
positions, up to float rounding.
"""

import keras
import tensorflow as tf


def on_rows(fn, rows):
  """Applies a per-channel layer built for `[b, h, w, c]` maps to rows.

  Args:
    fn: callable on `[b, h, w, c]` maps, acting on each channel alone.
    rows: float `[K, c]`.

  Returns:
    float `[K, c]`, `fn` of the `[1, 1, K, c]` view of the rows.
  """
  return tf.reshape(fn(rows[None, None]), tf.shape(rows))


def inference_affine(layer):
  """Batch norm at inference as `x * scale + offset`.

  Args:
    layer: a built `keras.layers.BatchNormalization` (center and scale), or
      a batch norm already folded into an affine map (a layer with `scale`
      and `offset` weights, `sact_tf.layers.ChannelAffine`).

  Returns:
    `(scale, offset)`, float `[channels]`: `gamma / sqrt(var + eps)` and
    `beta - mean * scale`, from the moving statistics (the folded layer's
    own weights).
  """
  if not isinstance(layer, keras.layers.BatchNormalization):
    return layer.scale, layer.offset
  scale = layer.gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
  return scale, layer.beta - layer.moving_mean * scale


def normalize_rows(layer, rows, training=None):
  """A batch norm layer on rows `[K, channels]`.

  At inference one multiply-add with `inference_affine` (the layer's values
  up to rounding); in training the layer itself on a `[1, 1, K, channels]`
  view (batch statistics of the rows).
  """
  if training:
    return on_rows(lambda x: layer(x, training=True), rows)
  scale, offset = inference_affine(layer)
  return rows * scale + offset


def conv_rows(conv, rows, training=None):
  """A `MaskedConv2D` on gathered rows: one matmul instead of a convolution.

  Args:
    conv: a built `sact_tf.layers.MaskedConv2D`.
    rows: float `[K, kh * kw * c_in]`: per output position, its input patch
      flattened in `(dy, dx, c_in)` order (`[K, c_in]` for 1x1).
    training: bool, batch norm mode.

  Returns:
    float `[K, c_out]`, what `conv` gives at those positions, its batch norm
    and activations included.
  """
  outputs = tf.matmul(rows, tf.reshape(conv.kernel, [-1, conv.filters]))
  if conv.use_bias:
    outputs = tf.nn.bias_add(outputs, conv.bias)
  if conv.normalizer is not None:
    outputs = normalize_rows(conv.normalizer, outputs, training)
  return conv.activation_fn(conv.batch_norm_activation_fn(outputs))
