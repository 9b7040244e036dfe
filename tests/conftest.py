"""Shared test fixtures and paths."""

import dataclasses
import json
import os
import subprocess
import sys
import zlib

import apache_beam as beam
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2
import tensorflow_transform.beam as tft_beam
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils

from finsent.data import loaders
from finsent.models import export
from finsent.configs import features
from finsent.models import preprocessing
from finsent.models import rnn
from finsent.models import sparse_focal_crossentropy
from finsent import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The full Twitter Financial News Sentiment set, beside the project (never
# copied into it).
TWITTER_FNS_DIR = os.path.join(ROOT, '..', 'shared', 'data',
                               'twitter_financial_news_sentiment')
# The Twitter Financial News Topic set, likewise.
TWITTER_FN_TOPIC_DIR = os.path.join(ROOT, '..', 'shared', 'data',
                                    'twitter_financial_news_topic')
LOAD_SAVED_MODEL = os.path.join(ROOT, 'tests', 'load_saved_model.py')
# Padded length of the `exported_model` fixture's Transform.
EXPORT_SEQUENCE_LENGTH = 12
# The models trained from scratch, which most tests exercise: by default
# the Transformer is the packaged encoder (tests/test_pretrained_encoder.py,
# tests/test_packaged_encoder.py and one end-to-end run cover that).
FROM_SCRATCH = dataclasses.replace(
    configs.PipelineConfig(), preprocessing=dataclasses.replace(
        configs.PreprocessingConfig(), pretrained_encoder=None))


def pytest_collection_modifyitems(items):
  """The end-to-end files first (stable otherwise): `make test` hands files
  to its two workers in this order, so the long runs start at once and
  overlap, and the short files fill in beside them."""
  items.sort(key=lambda item: item.get_closest_marker('e2e') is None)


def predict_in_fresh_process(saved_model_dir, texts):
  """Runs tests/load_saved_model.py in a new Python; returns its JSON answer."""
  result = subprocess.run(
      [sys.executable, LOAD_SAVED_MODEL, saved_model_dir, *texts],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def artifact(kind, uri, **int_properties):
  """A TFX artifact of `kind` at `uri` (made), with int custom properties."""
  made = kind()
  made.uri = str(uri)
  os.makedirs(made.uri, exist_ok=True)
  for name, value in int_properties.items():
    made.set_int_custom_property(name, value)
  return made


def eval_examples_artifact(uri):
  """ExampleGen-style Examples at `uri`: HEADLINES' texts, gzipped
  tf.Examples in Split-eval."""
  examples = artifact(standard_artifacts.Examples, uri)
  examples.split_names = '["train", "eval"]'
  os.makedirs(os.path.join(examples.uri, 'Split-eval'))
  with tf.io.TFRecordWriter(os.path.join(examples.uri, 'Split-eval',
                                         'data.gz'),
                            options='GZIP') as writer:
    for text, _ in HEADLINES:
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          'text': tf.train.Feature(bytes_list=tf.train.BytesList(
              value=[text.encode()]))})).SerializeToString())
  return examples


def break_serving_signature(saved_model_dir: str) -> None:
  """Makes serving_default fail at call time: its `label` output is rewired
  to another signature's input placeholder, which it never feeds."""
  path = os.path.join(saved_model_dir, 'saved_model.pb')
  proto = saved_model_pb2.SavedModel()
  with open(path, 'rb') as f:
    proto.ParseFromString(f.read())
  signature = proto.meta_graphs[0].signature_def[export.SERVING_SIGNATURE]
  signature.outputs['label'].name = (
      proto.meta_graphs[0].signature_def[export.EXAMPLES_SIGNATURE]
      .inputs['examples'].name)
  with open(path, 'wb') as f:
    f.write(proto.SerializeToString())


@pytest.fixture
def write(tmp_path):
  """write(name, content) -> path of a file in tmp_path (str or bytes)."""
  def _write(name, content):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
      path.write_bytes(content)
    else:
      path.write_text(content, encoding='utf-8')
    return str(path)
  return _write


HEADLINES = [
    ('Acme shares plunge after profit warning', 'negative'),
    ('Acme cuts guidance, shares tumble', 'negative'),
    ('Acme beats estimates and raises guidance', 'positive'),
    ('Acme shares surge on record profit', 'positive'),
    ('Acme to report results on Tuesday', 'neutral'),
    ('Acme names new chief financial officer', 'neutral'),
]


# Headlines with a topic and no sentiment label, as the topic set's rows;
# the `exported_topic_model` fixture learns its topic head from them.
TOPIC_HEADLINES = [
    ('Fed holds rates steady, signals patience', 'Fed | Central Banks'),
    ('Central bank leaves policy rate unchanged', 'Fed | Central Banks'),
    ('Oil climbs as producers extend supply cuts', 'Energy | Oil'),
    ('Crude prices slide on inventory build', 'Energy | Oil'),
    ('Acme appoints new chief executive', 'Personnel Change'),
    ('Acme finance chief to step down', 'Personnel Change'),
]


# Headlines with a sentiment label and a topic, as a canonical CSV with
# both gives them; the `exported_joint_model` fixture learns both heads
# from them (four topics, each with a negative, a neutral and a positive
# headline).
TOPIC_SENTIMENT_HEADLINES = [
    ('Fed signals more rate hikes, stocks slide', 'negative',
     'Fed | Central Banks'),
    ('Fed holds rates steady as expected', 'neutral', 'Fed | Central Banks'),
    ('Fed signals rate cuts, stocks rally', 'positive',
     'Fed | Central Banks'),
    ('Oil prices crash on supply glut', 'negative', 'Energy | Oil'),
    ('Oil output steady ahead of producer meeting', 'neutral',
     'Energy | Oil'),
    ('Oil producers post record profits', 'positive', 'Energy | Oil'),
    ('Acme misses estimates and cuts guidance', 'negative', 'Earnings'),
    ('Acme to report results on Tuesday', 'neutral', 'Earnings'),
    ('Acme beats estimates and raises guidance', 'positive', 'Earnings'),
    ('Factory orders slump as growth slows', 'negative', 'Macro'),
    ('Retail sales data due on Friday', 'neutral', 'Macro'),
    ('Jobs report beats forecasts, economy strong', 'positive', 'Macro'),
]


def _export_trained_model(root, rows, raw_spec, num_topics=0):
  """A Transform graph written by tft_beam from `rows` (raw features, one
  value or none each), an RNN trained on it (with a topic head of
  `num_topics` classes, each head learning from the rows with its label),
  exported to root/export."""
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(raw_spec))
  config = dataclasses.asdict(dataclasses.replace(
      FROM_SCRATCH.preprocessing, max_tokens=EXPORT_SEQUENCE_LENGTH))
  with beam.Pipeline() as pipeline:
    with tft_beam.Context(temp_dir=os.path.join(root, 'tmp')):
      transform_fn = (
          (pipeline | beam.Create(rows), metadata)
          | tft_beam.AnalyzeDataset(
              lambda x: preprocessing.preprocessing_fn(x, config)))
      _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(root, 'tft'))
  # The raw schema, which TFX's Transform writes beside the transform graph.
  metadata_io.write_metadata(
      metadata, os.path.join(root, 'tft', tft.TFTransformOutput.RAW_METADATA_DIR))
  tft_output = tft.TFTransformOutput(os.path.join(root, 'tft'))
  examples = [tf.train.Example(features=tf.train.Features(feature={
      key: tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode() for v in values]))
      for key, values in row.items()})).SerializeToString() for row in rows]
  transformed = tft_output.transform_raw_features(
      tf.io.parse_example(tf.constant(examples), raw_spec),
      drop_unused_features=True)
  ids = transformed[features.TOKEN_IDS_KEY].numpy()
  labels = transformed[features.LABEL_ID_KEY].numpy()
  vocabulary_size = tft_output.vocabulary_size_by_name(
      features.TOKEN_VOCABULARY_NAME) + config['oov_buckets'] + 1
  # The RNN with dropout: the case that needs `keras_variables` to export.
  model = rnn.build_rnn_classifier(vocabulary_size, EXPORT_SEQUENCE_LENGTH,
                                   embedding_dim=16, rnn_units=8,
                                   num_topics=num_topics)
  if num_topics:
    loss = {head: sparse_focal_crossentropy.SparseFocalCrossentropy(
        classes, ignore_class=-1) for head, classes in (
            (features.SENTIMENT_HEAD, len(features.LABELS)),
            (features.TOPIC_HEAD, num_topics))}
    labels = {features.SENTIMENT_HEAD: labels,
              features.TOPIC_HEAD: transformed[features.TOPIC_ID_KEY].numpy()}
  else:
    loss = 'sparse_categorical_crossentropy'
  model.compile(keras.optimizers.Adam(0.02), loss)
  model.fit({features.TOKEN_IDS_KEY: ids}, labels, epochs=25, verbose=0)
  export_dir = os.path.join(root, 'export')
  export.export_serving_model(model, tft_output, export_dir)
  return export_dir, model, tft_output


@pytest.fixture(scope='session')
def exported_model(tmp_path_factory):
  """A Transform graph written by tft_beam, a model trained on it, exported."""
  # `source` is required in this schema, as SchemaGen infers it when every
  # training example has one; clients must not have to send it.
  raw_spec = {'text': tf.io.FixedLenFeature([1], tf.string),
              'label': tf.io.FixedLenFeature([1], tf.string),
              'source': tf.io.FixedLenFeature([1], tf.string)}
  rows = [{'text': [t], 'label': [l], 'source': ['test']}
          for t, l in HEADLINES * 5]
  return _export_trained_model(
      str(tmp_path_factory.mktemp('exported_model')), rows, raw_spec)


@pytest.fixture(scope='session')
def exported_topic_model(tmp_path_factory):
  """As `exported_model`, with a topic head: trained on HEADLINES (a
  sentiment label, no topic) and TOPIC_HEADLINES (a topic, no label), the
  schema's label and topic both optional, as in data with both sets."""
  raw_spec = {'text': tf.io.FixedLenFeature([1], tf.string),
              'label': tf.io.VarLenFeature(tf.string),
              'topic': tf.io.VarLenFeature(tf.string)}
  rows = ([{'text': [t], 'label': [l], 'topic': []} for t, l in HEADLINES] +
          [{'text': [t], 'label': [], 'topic': [topic]}
           for t, topic in TOPIC_HEADLINES]) * 5
  return _export_trained_model(
      str(tmp_path_factory.mktemp('exported_topic_model')), rows, raw_spec,
      num_topics=len(features.TOPICS))


@pytest.fixture(scope='session')
def exported_joint_model(tmp_path_factory):
  """As `exported_topic_model`, trained on TOPIC_SENTIMENT_HEADLINES, each
  with both labels."""
  raw_spec = {'text': tf.io.FixedLenFeature([1], tf.string),
              'label': tf.io.VarLenFeature(tf.string),
              'topic': tf.io.VarLenFeature(tf.string)}
  rows = [{'text': [t], 'label': [l], 'topic': [topic]}
          for t, l, topic in TOPIC_SENTIMENT_HEADLINES] * 5
  return _export_trained_model(
      str(tmp_path_factory.mktemp('exported_joint_model')), rows, raw_spec,
      num_topics=len(features.TOPICS))


@dataclasses.dataclass(frozen=True)
class TransformedSample:
  """What TFX's Transform hands the Trainer, for the bundled sample."""
  transform_graph: str
  transformed_examples: str  # holds Split-train/ and Split-eval/


# Padded length of the `transformed_sample` fixture's Transform.
SAMPLE_SEQUENCE_LENGTH = 24


@pytest.fixture(scope='session')
def transformed_sample(tmp_path_factory):
  """The bundled sample through preprocessing_fn on Beam, laid out like
  Transform's transform_graph and transformed_examples artifacts."""
  records = list(loaders.read_records(configs.SAMPLE_DATA))
  return transform_records(
      str(tmp_path_factory.mktemp('transformed_sample')),
      {'train': records[:800], 'eval': records[800:]},
      dataclasses.replace(FROM_SCRATCH.preprocessing,
                          max_tokens=SAMPLE_SEQUENCE_LENGTH))


def trainer_fn_args(transformed: TransformedSample, tmp_path, custom_config,
                    **fn_args) -> tfx.components.FnArgs:
  """The Trainer's FnArgs over `transformed`'s train and eval splits,
  writing under `tmp_path` (serving/, model_run/)."""
  return tfx.components.FnArgs(
      train_files=[os.path.join(transformed.transformed_examples,
                                'Split-train', '*')],
      eval_files=[os.path.join(transformed.transformed_examples,
                               'Split-eval', '*')],
      transform_graph_path=transformed.transform_graph,
      serving_model_dir=str(tmp_path / 'serving'),
      model_run_dir=str(tmp_path / 'model_run'),
      custom_config=custom_config, **fn_args)


def transform_records(root: str, splits, config: configs.PreprocessingConfig
                      ) -> TransformedSample:
  """`splits` ({'train': records, 'eval': records}) through preprocessing_fn
  with `config` on Beam, analysed on train, written under `root`. Where
  some records have a topic, the label and the topic are both optional,
  as in data with sentiment and topic records."""
  records = [r for split_records in splits.values() for r in split_records]
  with_topics = any(r.topic for r in records)
  raw_spec = {features.TEXT_KEY: tf.io.FixedLenFeature([1], tf.string),
              features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.string)}
  if with_topics:
    raw_spec.update({key: tf.io.VarLenFeature(tf.string) for key in (
        features.LABEL_KEY, features.TOPIC_KEY)})
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(raw_spec))
  config = dataclasses.asdict(config)

  def row(record):
    if not with_topics:
      return {features.TEXT_KEY: [record.text],
              features.LABEL_KEY: [record.label]}
    return {features.TEXT_KEY: [record.text],
            features.LABEL_KEY: [record.label] if record.label else [],
            features.TOPIC_KEY: [record.topic] if record.topic else []}

  rows = {split: [row(r) for r in split_records]
          for split, split_records in splits.items()}
  graph_dir = os.path.join(root, 'transform_graph')
  examples_dir = os.path.join(root, 'transformed_examples')
  with beam.Pipeline() as pipeline:
    with tft_beam.Context(temp_dir=os.path.join(root, 'tmp')):
      train = pipeline | 'Train' >> beam.Create(rows['train'])
      (transformed_train, transformed_metadata), transform_fn = (
          (train, metadata)
          | tft_beam.AnalyzeAndTransformDataset(
              lambda x: preprocessing.preprocessing_fn(x, config)))
      transformed_eval, _ = (
          ((pipeline | 'Eval' >> beam.Create(rows['eval']), metadata),
           transform_fn) | tft_beam.TransformDataset())
      _ = transform_fn | tft_beam.WriteTransformFn(graph_dir)
      coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
      for split, transformed in (('train', transformed_train),
                                 ('eval', transformed_eval)):
        _ = (transformed
             | f'Encode{split}' >> beam.Map(coder.encode)
             | f'Write{split}' >> beam.io.WriteToTFRecord(
                 os.path.join(examples_dir, f'Split-{split}',
                              'transformed_examples'),
                 file_name_suffix='.gz'))
  metadata_io.write_metadata(metadata, os.path.join(
      graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return TransformedSample(graph_dir, examples_dir)


def word_vector(word: str, width: int) -> np.ndarray:
  """A distinct, reproducible vector per word."""
  return np.random.default_rng(zlib.crc32(word.encode('utf-8'))).normal(
      size=width).astype(np.float32)


def write_word_vectors(path, words, width=8, header=False) -> str:
  """A GloVe-format file of `words`' word_vector (word2vec's, with its
  `count dimension` header, with `header`) at `path` (a pathlib.Path)."""
  lines = [f'{len(words)} {width}'] if header else []
  lines += [word + ' ' + ' '.join(f'{v:.6f}' for v in word_vector(word, width))
            for word in words]
  path.write_text('\n'.join(lines) + '\n')
  return str(path)
