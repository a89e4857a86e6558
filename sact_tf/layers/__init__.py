"""Keras layers of sact_tf: halting heads, residual units, adaptive blocks,
sampling masks and interpolation."""

from sact_tf.layers.adaptive_block import AdaptiveBlock
from sact_tf.layers.basic_residual_unit import BasicResidualUnit
from sact_tf.layers.bottleneck_unit import BottleneckUnit
from sact_tf.layers.channel_affine import ChannelAffine
from sact_tf.layers.global_halting_head import GlobalHaltingHead
from sact_tf.layers.halting_head import HaltingHead
from sact_tf.layers.halting_unit import HaltingUnit
from sact_tf.layers.masked_conv2d import MaskedConv2D
from sact_tf.layers.rbf_interpolation import RbfInterpolation
from sact_tf.layers.residual_unit import ResidualUnit
from sact_tf.layers.sampling_mask import SamplingMask
from sact_tf.layers.sampling_unit import SamplingUnit
from sact_tf.layers.spatial_halting_head import SpatialHaltingHead
