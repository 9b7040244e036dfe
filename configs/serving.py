"""Knobs of serving: TF Serving in production (the files and manifests
`finsent serving-config` writes), `finsent serve` locally (docs/serving.md)."""

import dataclasses

from finsent.configs.knobs import knob

# The winner of the RNN/Transformer tournament is served under this name,
# beside sentiment_<architecture> for each architecture's own model.
PRODUCTION_MODEL_NAME = 'sentiment'
SERVABILITY_CHECKS = ('local', 'kubernetes')
# TF Serving's ports by protocol, as the tensorflow/serving image starts it:
# the Deployment's defaults, and `finsent serve`'s and `finsent predict`'s.
DEFAULT_PORTS = {'grpc': 8500, 'rest': 8501}


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
  """Server-side batching of concurrent requests (TF Serving's
  BatchingParameters; `batching.config`)."""
  max_batch_size: int = knob(64, 'largest batch the server forms')
  batch_timeout_micros: int = knob(2000, 'longest wait for a batch to fill')
  max_enqueued_batches: int = knob(100, 'batches queued before requests are '
                                   'refused')
  num_batch_threads: int = knob(2, 'threads running batches')


@dataclasses.dataclass(frozen=True)
class ServingConfig:
  """How the pushed models are served."""
  # The TF Serving release built against the TensorFlow the models use.
  image: str = knob('tensorflow/serving:2.16.1', 'the TF Serving image')
  grpc_port: int = knob(DEFAULT_PORTS['grpc'], "TF Serving's gRPC port")
  rest_api_port: int = knob(DEFAULT_PORTS['rest'], "TF Serving's REST port")
  file_system_poll_wait_seconds: int = knob(
      1, 'seconds between looks for new model versions')
  # TF Serving's latest{num_versions: 2}.
  num_versions: int = knob(
      2, 'versions kept loaded per model: the newest is labelled canary, the '
      'one before it stable')
  batching: BatchingConfig = BatchingConfig()
  # TFX 1.16's Kubeflow v2 compiler refuses InfraValidator, so on Kubeflow
  # the local check runs in the pipeline's pod.
  validation: str = knob(
      'local', "what shows a candidate servable before it is pushed: local "
      "(finsent's model server, components/serving_validator.py) or "
      "kubernetes (TFX's InfraValidator running `image` in a pod)",
      choices=SERVABILITY_CHECKS)
  validation_requests: int = knob(16, 'eval examples the check predicts on')
  replicas: int = knob(2, 'replicas of the TF Serving Deployment')
  models_volume_claim: str = knob(
      'finsent-serving-models', 'the volume claim holding the push '
      'destination')
  models_mount_path: str = knob('/models', 'where the pods mount it')
  cpu: str = knob('2', "each replica's CPU")
  memory: str = knob('4Gi', "each replica's memory")
