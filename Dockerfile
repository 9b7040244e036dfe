# The finsent pipeline image (docs/kubeflow.md). Every task of the
# compiled Kubeflow / Vertex AI pipeline runs it, with TFX's executor
# entrypoint as the spec's command; Beam's Dataflow, Flink and Spark
# workers run it through Beam's boot, its ENTRYPOINT. Both import finsent
# from site-packages (docs/kubeflow.md).
#
#   docker build -t REGISTRY/finsent-pipeline:TAG . && docker push ...

# Debian 12 with Python 3.11: where requirements/lock.txt is installed and
# tested (TFX 1.16's and TensorFlow 2.16's images are other Pythons/OSes).
FROM python:3.11.7-slim-bookworm

# Beam's SDK worker boot, of the Beam in the lock.
COPY --from=apache/beam_python3.11_sdk:2.60.0 /opt/apache/beam /opt/apache/beam

WORKDIR /pipeline

# The locked stack first: a code change rebuilds only the layers below.
COPY requirements/lock.txt requirements/pip_check.sh requirements/
RUN python -m pip install --no-cache-dir pip==24.3.1 \
    && python -m pip install --no-cache-dir --ignore-requires-python \
       --no-deps -r requirements/lock.txt

# finsent, installed as a package (its folders as finsent.<folder>, the
# data files with them): module paths (finsent.models.trainer.run_fn) and
# the schema file (KubeflowConfig.image_package_dir) resolve in
# site-packages, and the `finsent` command is on the PATH for TFJob pods.
COPY setup.py pyproject.toml ./
COPY configs/ configs/
COPY data/ data/
COPY models/ models/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY components/ components/
COPY pipeline/ pipeline/
COPY kubeflow/ kubeflow/
COPY benchmarks/ benchmarks/
COPY commands/ commands/
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && requirements/pip_check.sh python

ENV TF_CPP_MIN_LOG_LEVEL=2

ENTRYPOINT ["/opt/apache/beam/boot"]
