"""ServingValidator: a candidate is shown servable before a Pusher takes it.

TFX's InfraValidator launches TF Serving on the candidate, in Docker or on
Kubernetes; neither runs on these machines, so on Kubeflow the pipeline
uses InfraValidator itself (pipeline.create_pipeline) and locally this
component does the same job with the TF-Serving-compatible local server:

1. the candidate is copied to a fresh base path as version 1 and the server
   (serving/, `finsent serve`) is started on it in a subprocess;
2. the version must load and be AVAILABLE: the server replays the model's
   warm-up requests (assets.extra/tf_serving_warmup_requests) before it
   lets a version take traffic, so a failing warm-up fails here;
3. predictions on the eval split's headlines, over REST and over gRPC, must
   answer one known label and a probability row summing to 1 per headline,
   and so for the topic where the model has a topic head.

Its output is the InfraBlessing InfraValidator writes (an `INFRA_BLESSED` or
`INFRA_NOT_BLESSED` file, int property `blessed` 1 or 0), so TFX's
`Pusher(infra_blessing=...)` refuses an unservable model as it would after
InfraValidator. A model its Evaluator did not bless is not started at all.
"""

import math
import os
import shutil
import tempfile
from typing import List, Optional, Sequence

import requests
import tensorflow as tf
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from finsent.configs import features
from finsent.configs.features import LABELS
from finsent.configs.features import TOPICS
from finsent.serving.client import Prediction
from finsent.serving.client import SentimentClient
from finsent.serving.client import ServingClientError
from finsent.serving.server.process import ModelServerProcess

BLESSED_FILE = 'INFRA_BLESSED'
NOT_BLESSED_FILE = 'INFRA_NOT_BLESSED'
# InfraBlessing custom properties: `blessed` as InfraValidator sets it, and
# why a model was not blessed, for the run summary.
BLESSED = 'blessed'
PROBLEMS = 'problems'
_MODEL_NAME = 'candidate'
_EVAL_SPLIT = 'eval'


def eval_headlines(examples: tfx.types.standard_artifacts.Examples,
                   count: int) -> List[str]:
  """The first `count` texts of the eval split (ExampleGen's gzipped
  tf.Example records)."""
  split_uri = artifact_utils.get_split_uri([examples], _EVAL_SPLIT)
  files = sorted(fileio.glob(os.path.join(split_uri, '*')))
  spec = {features.TEXT_KEY: tf.io.FixedLenFeature([], tf.string)}
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
  return [tf.io.parse_single_example(record, spec)[features.TEXT_KEY]
          .numpy().decode('utf-8') for record in dataset.take(count)]


def serving_problems(saved_model_dir: str, texts: Sequence[str]) -> List[str]:
  """What stops the SavedModel being served; empty when it serves."""
  with tempfile.TemporaryDirectory() as base:
    shutil.copytree(saved_model_dir, os.path.join(base, _MODEL_NAME, '1'))
    try:
      with ModelServerProcess(
          f'--model_base_path={os.path.join(base, _MODEL_NAME)}',
          f'--model_name={_MODEL_NAME}', ready_model=_MODEL_NAME) as server:
        return _answer_problems(server, texts)
    except (RuntimeError, TimeoutError) as e:
      return [f'the model server did not start: {e}']


def _answer_problems(server: ModelServerProcess,
                     texts: Sequence[str]) -> List[str]:
  status = requests.get(server.url(f'/v1/models/{_MODEL_NAME}'),
                        timeout=30).json()['model_version_status'][0]
  if status['state'] != 'AVAILABLE':
    return [f'the model did not load: {status["status"]["error_message"]}']
  problems = []
  for protocol, target in (('rest', f'127.0.0.1:{server.rest_port}'),
                           ('grpc', server.grpc_target)):
    try:
      with SentimentClient(target, _MODEL_NAME, protocol,
                           retries=0) as client:
        predictions = client.predict(texts)
    except ServingClientError as e:
      problems.append(f'{protocol} predict failed: {e}')
      continue
    wrong = next(filter(None, map(prediction_problem, predictions)), None)
    if wrong:
      problems.append(f'{protocol} predict answered {wrong}')
  return problems


def prediction_problem(p: Prediction) -> Optional[str]:
  """What is wrong with one answer, or None: a label outside LABELS or
  probabilities not summing to 1; likewise for a topic head's answer."""
  if p.label not in LABELS or not math.isclose(
      sum(p.probabilities.values()), 1.0, abs_tol=1e-3):
    return (f'{p.label!r} with probabilities {p.probabilities} for '
            f'{p.text!r}')
  if p.topic is not None and (p.topic not in TOPICS or not math.isclose(
      sum(p.topic_probabilities.values()), 1.0, abs_tol=1e-3)):
    return (f'the topic {p.topic!r} with probabilities '
            f'{p.topic_probabilities} for {p.text!r}')
  return None


@tfx.dsl.components.component
def ServingValidator(
    model: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.Model],
    examples: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.Examples],
    blessing: tfx.dsl.components.OutputArtifact[
        tfx.types.standard_artifacts.InfraBlessing],
    # Optional (TFX reads the default None so).
    model_blessing: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ModelBlessing] = None,
    num_examples: tfx.dsl.components.Parameter[int] = 16):
  """Blesses `model` when the local server loads it and answers with it."""
  if model_blessing is not None and not model_blessing.get_int_custom_property(
      BLESSED):
    problems = ['not validated: the Evaluator did not bless the model']
  else:
    problems = serving_problems(
        path_utils.serving_model_path(model.uri),
        eval_headlines(examples, num_examples))
  blessing.set_int_custom_property(BLESSED, 0 if problems else 1)
  blessing.set_string_custom_property(PROBLEMS, '; '.join(problems))
  with fileio.open(os.path.join(
      blessing.uri, NOT_BLESSED_FILE if problems else BLESSED_FILE), 'w') as f:
    f.write('\n'.join(problems))
