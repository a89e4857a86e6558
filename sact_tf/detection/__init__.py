"""Object detection with an ACT / SACT ResNet backbone (keras-hub RetinaNet)."""

from sact_tf.detection.adaptive_resnet_backbone import AdaptiveResNetBackbone
from sact_tf.detection.coco_evaluation import coco_metrics
from sact_tf.detection.detector import build_detector
from sact_tf.detection.detector import detect
