"""A client of the served sentiment models: REST or gRPC, one interface.

  client = SentimentClient('127.0.0.1:8501')                   # REST
  client = SentimentClient('127.0.0.1:8500', protocol='grpc')  # gRPC
  client.predict(['Acme shares plunge after profit warning'])
  -> [Prediction(label='negative', probabilities={...}, version=...)]

It speaks TF Serving's own APIs, so it works against `tensorflow_model_server`
and `finsent serve` alike. Long inputs are sent in batches of at most
`max_batch_size` texts; a request answered "unavailable" (HTTP 503, gRPC
UNAVAILABLE: a model still loading, a full batching queue) or not answered
at all is retried with exponential backoff; every call has a timeout.

`finsent predict "headline" ...` (commands/predict.py) is the command line
over it. It imports neither the local server nor the deployment writer:
monitoring and the servability gate use it against any TF Serving.
"""

import dataclasses
import json
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from finsent.configs.features import LABEL_OUTPUT
from finsent.configs.features import LABELS
from finsent.configs.features import PROBABILITIES_OUTPUT
from finsent.configs.features import TOPIC_OUTPUT
from finsent.configs.features import TOPIC_PROBABILITIES_OUTPUT
from finsent.configs.features import TOPICS
from finsent.configs.serving import DEFAULT_PORTS
from finsent.configs.serving import PRODUCTION_MODEL_NAME

SIGNATURE_NAME = 'serving_default'
TEXT_INPUT = 'text'


class ServingClientError(RuntimeError):
  """A request the server refused, or that failed after every retry."""


@dataclasses.dataclass(frozen=True)
class Prediction:
  text: str
  label: str
  probabilities: Dict[str, float]
  # The model version that answered (gRPC responses carry it; REST's do not).
  version: Optional[int] = None
  # A model with a topic head (models.heads) answers these too.
  topic: Optional[str] = None
  topic_probabilities: Optional[Dict[str, float]] = None


class _Retryable(Exception):
  """A failure worth another try (the server said unavailable, or the
  connection failed)."""


class SentimentClient:
  """Predicts sentiment through a TF Serving REST or gRPC endpoint."""

  def __init__(self, server: str, model_name: str = PRODUCTION_MODEL_NAME,
               protocol: str = 'rest', version: Optional[int] = None,
               label: Optional[str] = None, timeout_seconds: float = 10.0,
               retries: int = 3, backoff_seconds: float = 0.1,
               max_batch_size: int = 64):
    """`server` is host:port; `version` or `label` pins a model version."""
    if protocol not in DEFAULT_PORTS:
      raise ValueError(f'protocol must be rest or grpc, got {protocol!r}')
    if version is not None and label is not None:
      raise ValueError('give a version or a label, not both')
    if max_batch_size < 1 or retries < 0 or timeout_seconds <= 0:
      raise ValueError('max_batch_size and timeout_seconds must be positive '
                       'and retries >= 0')
    self.model_name = model_name
    self._timeout = timeout_seconds
    self._retries = retries
    self._backoff = backoff_seconds
    self._max_batch_size = max_batch_size
    if protocol == 'rest':
      self._send, self._close = self._rest_sender(server, version, label)
    else:
      self._send, self._close = self._grpc_sender(server, version, label)

  def close(self) -> None:
    """Closes the connection (an open gRPC channel holds up a server's
    graceful stop for its whole grace period)."""
    self._close()

  def __enter__(self) -> 'SentimentClient':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def predict(self, texts: Sequence[str]) -> List[Prediction]:
    """One prediction per text, in order."""
    predictions = []
    for start in range(0, len(texts), self._max_batch_size):
      batch = list(texts[start:start + self._max_batch_size])
      predictions.extend(self._with_retries(lambda b=batch: self._send(b)))
    return predictions

  def _with_retries(self, call: Callable[[], List[Prediction]]
                    ) -> List[Prediction]:
    for attempt in range(self._retries + 1):
      try:
        return call()
      except _Retryable as e:
        if attempt == self._retries:
          raise ServingClientError(
              f'{self.model_name}: gave up after {attempt + 1} attempts: '
              f'{e}') from e
        time.sleep(self._backoff * 2 ** attempt)
    raise AssertionError('unreachable')

  def _rest_sender(self, server, version, label):
    import requests  # only what REST needs: no TensorFlow import
    session = requests.Session()
    url = f'http://{server}/v1/models/{self.model_name}'
    if version is not None:
      url += f'/versions/{version}'
    elif label is not None:
      url += f'/labels/{label}'
    url += ':predict'

    def send(texts: List[str]) -> List[Prediction]:
      try:
        response = session.post(url, timeout=self._timeout, data=json.dumps(
            {'signature_name': SIGNATURE_NAME, 'instances': texts}))
      except (requests.ConnectionError, requests.Timeout) as e:
        raise _Retryable(str(e)) from e
      if response.status_code == 503:
        raise _Retryable(_rest_error(response))
      if response.status_code != 200:
        raise ServingClientError(
            f'{url}: HTTP {response.status_code}: {_rest_error(response)}')
      rows = response.json()['predictions']
      return [Prediction(text, row[LABEL_OUTPUT],
                         dict(zip(LABELS, row[PROBABILITIES_OUTPUT])),
                         **_topic_fields(row.get(TOPIC_OUTPUT),
                                         row.get(TOPIC_PROBABILITIES_OUTPUT)))
              for text, row in zip(texts, rows)]
    return send, session.close

  def _grpc_sender(self, server, version, label):
    # TensorFlow for its TensorProto codec: the serving API protos import
    # it anyway.
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    channel = grpc.insecure_channel(server)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def send(texts: List[str]) -> List[Prediction]:
      request = predict_pb2.PredictRequest()
      request.model_spec.name = self.model_name
      request.model_spec.signature_name = SIGNATURE_NAME
      if version is not None:
        request.model_spec.version.value = version
      elif label is not None:
        request.model_spec.version_label = label
      request.inputs[TEXT_INPUT].CopyFrom(
          tf.make_tensor_proto(texts, dtype=tf.string))
      try:
        response = stub.Predict(request, timeout=self._timeout)
      except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED):
          raise _Retryable(f'{e.code().name}: {e.details()}') from e
        raise ServingClientError(
            f'{server} {self.model_name}: {e.code().name}: '
            f'{e.details()}') from e
      return predictions_from_arrays(
          texts, {name: tf.make_ndarray(tensor)
                  for name, tensor in response.outputs.items()},
          response.model_spec.version.value)
    return send, channel.close


def _topic_fields(topic: Optional[str],
                  probabilities: Optional[Sequence[float]]
                  ) -> Dict[str, object]:
  """A Prediction's topic fields from a response's row; none from a
  sentiment-only model."""
  if topic is None:
    return {}
  return {'topic': topic,
          'topic_probabilities': dict(zip(TOPICS, map(float, probabilities)))}


def predictions_from_arrays(texts: Sequence[str], arrays: Dict[str, Any],
                            version: Optional[int]) -> List[Prediction]:
  """The serving signature's outputs as arrays (labels and topics as
  bytes), from a gRPC response or a SavedModel called in process -> one
  Prediction per text."""
  rows = len(texts)
  topics = arrays.get(TOPIC_OUTPUT, [None] * rows)
  topic_rows = arrays.get(TOPIC_PROBABILITIES_OUTPUT, [None] * rows)
  return [Prediction(text, label.decode('utf-8'),
                     dict(zip(LABELS, map(float, row))), version,
                     **_topic_fields(
                         topic.decode('utf-8') if topic is not None else None,
                         topic_row))
          for text, label, row, topic, topic_row in zip(
              texts, arrays[LABEL_OUTPUT], arrays[PROBABILITIES_OUTPUT],
              topics, topic_rows)]


def _rest_error(response) -> str:
  try:
    return response.json()['error']
  except (ValueError, KeyError, TypeError):
    return response.text[:500]
