"""The serving core behind both APIs: resolve a model spec, run a signature.

`ModelServer` owns the `ModelManager` (versions), the batch scheduler (when
batching is on) or a thread pool (when it is off), and the metrics. The
REST and gRPC front ends only translate requests into its calls, so both
answer alike, as TF Serving's two front ends share one ServerCore.
"""

import concurrent.futures
import contextlib
import time
from typing import Dict, Iterator, Optional, Sequence

import grpc
import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_pb2

from finsent.serving.server.batching import BatchScheduler
from finsent.serving.server.errors import ServingError
from finsent.serving.server.metrics import ServingMetrics
from finsent.serving.server.model_manager import LoadedVersion
from finsent.serving.server.model_manager import ModelManager

SIGNATURE_DEF_FIELD = 'signature_def'
# TF Serving's Classify contract: one serialized-tf.Example input called
# `inputs`, outputs `classes` and/or `scores` of shape [N, K].
CLASSIFY_INPUTS = 'inputs'
CLASSIFY_CLASSES = 'classes'
CLASSIFY_SCORES = 'scores'


class ModelServer:
  """Versions, batching and metrics for every served model."""

  def __init__(self, manager: ModelManager, metrics: ServingMetrics,
               batching: Optional[BatchScheduler] = None,
               num_request_threads: int = 16):
    self.manager = manager
    self.metrics = metrics
    self._batching = batching
    self._pool = (None if batching else concurrent.futures.ThreadPoolExecutor(
        num_request_threads, thread_name_prefix='session-run'))

  @contextlib.contextmanager
  def acquired(self, spec: model_pb2.ModelSpec) -> Iterator[LoadedVersion]:
    """The version `spec` names, kept loaded while the block runs."""
    model = self.manager.model(spec.name)
    choice = spec.WhichOneof('version_choice')
    if choice == 'version':
      loaded = model.acquire(version=spec.version.value)
    elif choice == 'version_label':
      loaded = model.acquire(label=spec.version_label)
    else:
      loaded = model.acquire()
    try:
      yield loaded
    finally:
      loaded.release()

  def run(self, loaded: LoadedVersion, signature_name: str,
          inputs: Dict[str, np.ndarray], output_filter: Sequence[str] = ()
          ) -> concurrent.futures.Future:
    """Runs a signature of an acquired version, batched when batching is
    on; the version stays loaded until the future is done."""
    loaded.retain()
    try:
      if self._batching is not None:
        future = self._batching.submit(loaded, signature_name, inputs,
                                       output_filter)
      else:
        future = self._pool.submit(loaded.run, signature_name, inputs,
                                   output_filter)
    except BaseException:
      loaded.release()
      raise
    future.add_done_callback(lambda _: loaded.release())
    return future

  def classify_inputs(self, loaded: LoadedVersion, signature_name: str,
                      request_input: input_pb2.Input
                      ) -> Dict[str, np.ndarray]:
    """The serialized examples a Classify request feeds its signature.

    The signature is checked for Classify's shape - one `inputs` tensor,
    `classes` and/or `scores` out - as TF Serving does by default, rather
    than by its method_name.
    """
    if signature_name not in loaded.signature_defs:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         f'No signature was found with the name: '
                         f'{signature_name}')
    signature = loaded.signature_defs[signature_name]
    if len(signature.inputs) != 1:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         'Expected one input Tensor.')
    if CLASSIFY_INPUTS not in signature.inputs:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'No classification inputs found in SignatureDef: {signature}')
    if not {CLASSIFY_CLASSES, CLASSIFY_SCORES} & set(signature.outputs):
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          'Expected classification signature outputs to contain at least '
          f'one of "classes" or "scores". Signature was: {signature}')
    return {CLASSIFY_INPUTS: np.array(serialized_examples(request_input),
                                      dtype=object)}

  def metadata(self, spec: model_pb2.ModelSpec,
               metadata_fields: Sequence[str]
               ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata: the SignatureDefs of the version `spec` names."""
    if not metadata_fields:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          'GetModelMetadataRequest must specify at least one metadata_field')
    for field in metadata_fields:
      if field != SIGNATURE_DEF_FIELD:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'Metadata field {field} is not supported')
    with self.acquired(spec) as loaded:
      response = get_model_metadata_pb2.GetModelMetadataResponse()
      response.model_spec.name = loaded.name
      response.model_spec.version.value = loaded.version
      signature_map = get_model_metadata_pb2.SignatureDefMap()
      for name, signature in loaded.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
      response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
      return response

  def status(self, spec: model_pb2.ModelSpec
             ) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus; like TF Serving, a label is ignored (all versions)."""
    model = self.manager.model(spec.name)
    if spec.WhichOneof('version_choice') == 'version':
      return model.status(version=spec.version.value)
    return model.status()

  def close(self) -> None:
    if self._batching is not None:
      self._batching.stop()
    if self._pool is not None:
      self._pool.shutdown()
    self.manager.stop()


def serialized_examples(request_input: input_pb2.Input) -> list:
  """The Input's examples serialized, each merged with the context (the
  features of the context are added to every example, as TF Serving does)."""
  kind = request_input.WhichOneof('kind')
  if kind == 'example_list':
    examples = list(request_input.example_list.examples)
    context = None
  elif kind == 'example_list_with_context':
    examples = list(request_input.example_list_with_context.examples)
    context = request_input.example_list_with_context.context
  else:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'Input is empty.')
  if not examples:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'Input is empty.')
  serialized = []
  for example in examples:
    if context is not None:
      merged = example_pb2.Example()
      merged.CopyFrom(context)
      merged.MergeFrom(example)
      example = merged
    serialized.append(example.SerializeToString())
  return serialized


def classification_result(outputs: Dict[str, np.ndarray]
                          ) -> classification_pb2.ClassificationResult:
  """TF Serving's ClassificationResult from a classify signature's outputs."""
  classes = outputs.get(CLASSIFY_CLASSES)
  scores = outputs.get(CLASSIFY_SCORES)
  rows = (classes if classes is not None else scores).shape[0]
  result = classification_pb2.ClassificationResult()
  for i in range(rows):
    classification = result.classifications.add()
    width = (classes if classes is not None else scores).shape[1]
    for j in range(width):
      label = classification.classes.add()
      if classes is not None:
        label.label = _text(classes[i, j])
      if scores is not None:
        label.score = float(scores[i, j])
  return result


def _text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


class RequestTimer:
  """Times one request and records it in the metrics when it ends."""

  def __init__(self, metrics: ServingMetrics, api: str, entrypoint: str):
    self._metrics = metrics
    self._api = api
    self._entrypoint = entrypoint
    self._started = time.perf_counter()
    self.model_name = ''
    self.version = ''

  def done(self, code: grpc.StatusCode) -> None:
    self._metrics.observe_request(
        self.model_name, self.version, self._api, self._entrypoint,
        code.name, time.perf_counter() - self._started)

