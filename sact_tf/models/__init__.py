"""CIFAR and ImageNet residual networks with ACT / SACT blocks."""

from sact_tf.models.cifar_resnet import CifarResNet
from sact_tf.models.cifar_resnet import cifar_resnet
from sact_tf.models.imagenet_resnet import ImageNetResNet
from sact_tf.models.imagenet_resnet import imagenet_resnet
