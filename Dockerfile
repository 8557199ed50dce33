# emorefine: GPU image.
#
#   docker build -t emorefine .
#   docker run --gpus all -v "$PWD/data:/data" emorefine refine /data/records -o /data/runs/emodb --rounds 5 --preset emodb
#
# The image has not been built here: the development machines have no Docker engine.
# tests/test_docker.py lints this file with hadolint and checks the points below.
#
# Base image: the official TensorFlow GPU image for the TensorFlow line that setup.py
# requires (tensorflow>=2.21,<2.22). Docker Hub tags it as <version>-gpu (tensorflow.org/install/docker).
# It is built from tensorflow/build's tensorflow_runtime_dockerfiles/gpu.Dockerfile: an nvidia/cuda
# Ubuntu 22.04 base with the CUDA/cuDNN libraries, one Python (3.11 according to that Dockerfile and
# to reports about 2.21.0-gpu), and TensorFlow installed system-wide with pip.
# According to that Dockerfile, the base installs no libsndfile and has no non-root user; it creates
# `tfuser` only in its jupyter stage.
FROM tensorflow/tensorflow:2.21.0-gpu

LABEL org.opencontainers.image.title="emorefine" \
      org.opencontainers.image.description="Segment-based speech emotion recognition with emotion profile refinery (Keras/TensorFlow, GPU)"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# libsndfile for soundfile. soundfile's binary wheels bundle a copy and load it first; the system
# library is the fallback when pip installs the pure-Python wheel.
# DL3008 (pin apt versions) is ignored here on purpose. Ubuntu's -updates/-security pockets keep only
# the newest build of a package, so a pinned libsndfile1 version stops installing when the next
# security fix comes out. The base tag already fixes the Ubuntu release.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NUMBA_CACHE_DIR=/tmp/numba-cache

# Copy only what the package needs (see .dockerignore). tests/, benchmarks/ and data stay out.
COPY setup.py README.md /tmp/emorefine/
COPY emotion_refinery /tmp/emorefine/emotion_refinery
COPY tf_records /tmp/emorefine/tf_records
COPY cli /tmp/emorefine/cli

# Every extra that a command needs (tests/test_docker.py checks the list against setup.py and the code):
# [baseline] brings openSMILE for `emorefine baseline` and `build-records --sequences lld|egemaps`;
# [ray] lets a container join a Ray cluster (`refine --executor ray --ray-address ...`); [export] brings tf2onnx
# for `export --format onnx` and the runtimes that load exported models (onnxruntime, LiteRT). Not [gpu]: the
# base image's TensorFlow already has its CUDA libraries. Not [test]: the tests are not in the image.
# Keep the base image's TensorFlow build (the one that matches its CUDA/cuDNN). Its exact version is
# passed to pip as a constraint, so pip cannot swap in another wheel while it resolves emorefine's
# requirements. The build fails if the TensorFlow version changes anyway.
RUN TF_VERSION="$(python3 -c 'import importlib.metadata as m; print(m.version("tensorflow"))')" \
 && echo "tensorflow==${TF_VERSION}" > /tmp/tf-constraint.txt \
 && python3 -m pip install --no-cache-dir --constraint /tmp/tf-constraint.txt "/tmp/emorefine[baseline,ray,export]" \
 && test "$(python3 -c 'import importlib.metadata as m; print(m.version("tensorflow"))')" = "${TF_VERSION}" \
 && rm -rf /tmp/emorefine /tmp/tf-constraint.txt

# Non-root user. /data belongs to it, so a named volume starts out writable. With a bind mount the
# host directory keeps its owner; run with --user "$(id -u):$(id -g)" to write files as yourself.
# NUMBA_CACHE_DIR (set above) gives librosa's cached numba functions somewhere writable, for any uid.
RUN groupadd --gid 1000 emorefine \
 && useradd --uid 1000 --gid emorefine --no-log-init --create-home --shell /bin/bash emorefine \
 && mkdir -p /data \
 && chown emorefine:emorefine /data

# A numeric USER (hadolint DL3066): the host and runAsNonRoot checks can resolve it without /etc/passwd.
USER 1000:1000
WORKDIR /data
VOLUME ["/data"]

ENTRYPOINT ["emorefine"]
CMD ["--help"]
