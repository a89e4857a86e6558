"""sact_tf: Spatially Adaptive Computation Time for ResNets in TF2 / Keras 3."""

import setuptools

setuptools.setup(
    name="sact_tf",
    version="0.1.0",
    description=("Spatially Adaptive Computation Time for Residual Networks "
                 "(Figurnov et al., CVPR 2017) in TensorFlow 2 / Keras 3, "
                 "with sparse execution of the active positions"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["sact_tf", "sact_tf.*"]),
    install_requires=[
        "tensorflow~=2.20.0",
        "keras>=3.15,<4",
        # The RetinaNet detector of sact_tf.detection; 0.32 needs keras>=3.15
        # and, with tensorflow~=2.20.0, resolves to TensorFlow 2.20.
        "keras-hub==0.32.*",
        "tf-models-official~=2.20.0",
        "tensorflow-datasets",
        # tensorflow-datasets imports it without declaring it.
        "importlib_resources",
        "absl-py",
        "numpy",
        "scipy",
        # The EMD saliency metric: Pele and Werman's FastEMD.
        "pyemd>=1.1",
        "h5py",
        "matplotlib",
        "Pillow",
        "scikit-learn",
        "ai-edge-litert",
        "tensorflow-serving-api~=2.20.0",
        # COCO's annotation files and detection metrics.
        "pycocotools",
    ],
    extras_require={"test": ["pytest"]},
)
