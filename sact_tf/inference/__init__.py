"""Inference-optimised models: batch norms folded into the weights.

`optimize(model)` returns a copy of a vanilla, ACT or SACT model (dense or
sparse execution) in its inference form (`folded_batch_norm=True`): the
batch norm after each convolution folded into its kernel and biases, so
that TensorFlow's CPU kernels fuse convolution (or, on rows, matmul), bias
and ReLU into one op; the batch norms that no convolution's weights can
absorb exactly as one precomputed multiply-add (`ChannelAffine`). The same
layers run it, dense and sparse, so its outputs are those of the model up
to float rounding. The models themselves keep the original's computation.
"""

from sact_tf.inference.folding import FOLDABLE_TYPES
from sact_tf.inference.folding import fold_weights
from sact_tf.inference.folding import optimize
