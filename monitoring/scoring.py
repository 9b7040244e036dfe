"""Scoring headlines with Beam's RunInference: in process or through a server.

Both model handlers take a batch of headline texts and return one
`serving.client.Prediction` per text, so everything downstream is the same:

* `SavedModelHandler`: loads the pushed SavedModel in the worker and calls
  its `serving_default` signature (raw text in, probabilities and label
  out). Beam's own TFModelHandlerTensor cannot load it: it loads Keras
  models, and the export is a plain tf.Module (models/export.py).
* `ServedModelHandler`: asks TF Serving (or `finsent serve`) through the
  project's client, REST or gRPC, one request per batch, retried with
  backoff when the server is unavailable.

`ScoreHeadlines` runs either under RunInference with its exception
handling: a batch that still fails after the client's retries becomes one
dead letter per headline, with the reason.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.ml.inference import base

from finsent.monitoring import metrics
from finsent.monitoring.headlines import DeadLetter
from finsent.monitoring.headlines import Headline
from finsent.serving.client import predictions_from_arrays
from finsent.serving.client import SentimentClient

SIGNATURE = 'serving_default'


@dataclasses.dataclass(frozen=True)
class ScoredHeadline:
  """A headline, the tickers it names and the model's view of it: its
  sentiment, and its topic when the model has a topic head."""
  headline: Headline
  tickers: Tuple[str, ...]
  label: str
  probabilities: Dict[str, float]
  topic: Optional[str] = None

  @property
  def score(self) -> float:
    """p_positive - p_negative, in [-1, 1]."""
    return self.probabilities['positive'] - self.probabilities['negative']

  def to_dict(self) -> Dict[str, Any]:
    topic = {} if self.topic is None else {'topic': self.topic}
    return {**self.headline.to_dict(), 'tickers': list(self.tickers),
            'predicted': self.label, **topic,
            'p_negative': round(self.probabilities['negative'], 4),
            'score': round(self.score, 4)}

  def to_record(self) -> Dict[str, Any]:
    """All of it, as JSON can hold it (from_record reads it back)."""
    return {'id': self.headline.id,
            'headline': dataclasses.asdict(self.headline),
            'tickers': list(self.tickers), 'label': self.label,
            'probabilities': self.probabilities, 'topic': self.topic}

  @classmethod
  def from_record(cls, record: Dict[str, Any]) -> 'ScoredHeadline':
    fields = dict(record['headline'])
    fields['extra'] = tuple(tuple(pair) for pair in fields['extra'])
    # Records scored before topics were served have no 'topic'.
    return cls(Headline(**fields), tuple(record['tickers']), record['label'],
               record['probabilities'], record.get('topic'))


def resolve_saved_model(path: str) -> Tuple[str, Optional[int]]:
  """A SavedModel dir, or a served model's base path (its newest integer
  version, as TF Serving picks it) -> (SavedModel dir, version or None)."""
  if os.path.isfile(os.path.join(path, 'saved_model.pb')):
    return path, None
  versions = sorted(int(n) for n in (os.listdir(path) if os.path.isdir(path)
                                     else ()) if n.isdigit() and
                    os.path.isfile(os.path.join(path, n, 'saved_model.pb')))
  if not versions:
    raise FileNotFoundError(
        f'{path}: neither a SavedModel (no saved_model.pb) nor a model base '
        'path with integer versions')
  return os.path.join(path, str(versions[-1])), versions[-1]


class _TimedHandler(base.ModelHandler):
  """Batch bounds and the Prometheus latency/batch-size metrics."""

  def __init__(self, min_batch_size: int, max_batch_size: int):
    super().__init__()
    self._batch_bounds = {'min_batch_size': min_batch_size,
                          'max_batch_size': max_batch_size}

  def batch_elements_kwargs(self):
    return self._batch_bounds

  def run_inference(self, batch: Sequence[str], model: Any,
                    inference_args: Optional[Dict[str, Any]] = None
                    ) -> Iterable[base.PredictionResult]:
    start = time.perf_counter()
    predictions = self._predict(list(batch), model)
    metrics.SCORING_LATENCY.observe(time.perf_counter() - start)
    metrics.BATCH_SIZE.observe(len(batch))
    return [base.PredictionResult(text, p)
            for text, p in zip(batch, predictions)]

  def _predict(self, texts, model):
    raise NotImplementedError


@functools.lru_cache(maxsize=2)
def _load_saved_model(saved_model_dir: str):
  """Once per process: a watch (monitoring/watch.py) runs a pipeline per
  poll, and RunInference would load the model again in each."""
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
  return tf.saved_model.load(saved_model_dir)


class SavedModelHandler(_TimedHandler):
  """RunInference on the exported SavedModel, loaded in the worker."""

  def __init__(self, saved_model_path: str, min_batch_size: int = 16,
               max_batch_size: int = 256):
    super().__init__(min_batch_size, max_batch_size)
    self.saved_model_dir, self.version = resolve_saved_model(saved_model_path)

  def load_model(self):
    return _load_saved_model(self.saved_model_dir)

  def _predict(self, texts, model):
    import tensorflow as tf
    outputs = model.signatures[SIGNATURE](text=tf.constant(texts))
    return predictions_from_arrays(
        texts, {name: tensor.numpy() for name, tensor in outputs.items()},
        self.version)

  def get_metrics_namespace(self):
    return 'finsent_saved_model'


class ServedModelHandler(_TimedHandler):
  """RunInference through TF Serving's REST or gRPC API."""

  def __init__(self, server: str, model_name: str = 'sentiment',
               protocol: str = 'rest', timeout_seconds: float = 10.0,
               retries: int = 3, min_batch_size: int = 16,
               max_batch_size: int = 256):
    super().__init__(min_batch_size, max_batch_size)
    self._client_args = dict(
        server=server, model_name=model_name, protocol=protocol,
        timeout_seconds=timeout_seconds, retries=retries,
        max_batch_size=max_batch_size)

  def load_model(self) -> SentimentClient:
    return SentimentClient(**self._client_args)

  def _predict(self, texts, client):
    return client.predict(texts)

  def get_metrics_namespace(self):
    return 'finsent_served_model'


def _scored(keyed_result) -> ScoredHeadline:
  (headline, tickers), result = keyed_result
  prediction = result.inference
  metrics.HEADLINES.labels('scored').inc()
  return ScoredHeadline(headline, tickers, prediction.label,
                        prediction.probabilities, prediction.topic)


def _failed_batch(failure) -> Iterable[DeadLetter]:
  # Beam's dead letter: (the failed batch, (type, repr(error), traceback)).
  batch, (_, error, _) = failure
  for (headline, _), _ in batch:
    metrics.HEADLINES.labels('dead_letter').inc()
    metrics.DEAD_LETTERS.labels('score').inc()
    yield DeadLetter('score', headline.where, headline.to_dict(), error)


class ScoreHeadlines(beam.PTransform):
  """(Headline, tickers) -> ScoredHeadline, and dead letters for the
  headlines of batches that could not be scored.

  Returns (scored, dead_letters)."""

  def __init__(self, model_handler: base.ModelHandler):
    super().__init__()
    self._model_handler = model_handler

  def expand(self, headlines_with_tickers):
    results, failures = (
        headlines_with_tickers
        | 'KeyByHeadline' >> beam.Map(lambda pair: (pair, pair[0].text))
        | 'RunInference' >> base.RunInference(
            base.KeyedModelHandler(self._model_handler)
        ).with_exception_handling())
    scored = results | 'Scored' >> beam.Map(_scored)
    dead_letters = (failures.failed_inferences
                    | 'FailedBatches' >> beam.FlatMap(_failed_batch))
    return scored, dead_letters
