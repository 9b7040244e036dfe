"""The data gate: bad data stops `finsent run` with a clear message.

Two layers. Files the readers cannot take (the ten bad datasets below but
drift) stop the run in its pre-flight check, before any component, naming
file and line. Data that reads fine but breaks the curated schema or drifts
from the last accepted data is stopped by the DataGate component on what
TFX's own ExampleValidator and DistributionValidator executors found (run
here for real on TFDV statistics); drift through a whole pipeline run is in
tests/test_pipeline_e2e.py.
"""

import dataclasses
import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.components.distribution_validator import (
    executor as distribution_validator_executor)
from tfx.components.example_validator import (
    executor as example_validator_executor)
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from finsent.components import data_gate
from finsent.components import text_example_gen
from finsent.data import loaders
from finsent.commands import cli
from finsent import configs
from finsent.pipeline import local_runner
from finsent.pipeline import pipeline as pipeline_lib

HEADLINES = {
    'negative': 'Shares plunge after the lender cuts its outlook',
    'neutral': 'Board to meet on Tuesday to discuss the annual report',
    'positive': 'Profit beats forecasts and the dividend rises',
}


def _csv(rows):
  return 'text,label\n' + ''.join(f'{text},{label}\n' for text, label in rows)


BALANCED = _csv([(HEADLINES[label], label) for label in loaders.LABELS] * 20)

BAD_DATASETS = {
    'label_outside_domain': (
        'data.csv', _csv([('Shares jump', 'positive'),
                          ('Shares soar', 'bullish')]),
        "data.csv:3: label 'bullish' is not one of negative, neutral, "
        'positive'),
    'missing_text_column': (
        'data.csv', 'headline,label\nShares jump,positive\n',
        "data.csv:1: header 'headline,label' lacks column(s) text"),
    'all_empty_texts': (
        'data.csv', 'text,label\n"",positive\n"  ",negative\n',
        'data.csv:2: text is empty'),
    'class_missing_entirely': (
        'data.csv', _csv([('Shares jump', 'positive'),
                          ('Shares sink', 'negative')] * 5),
        'no records labelled neutral: the models need examples of every '
        'class'),
    'wrong_types': (
        'data.jsonl', '{"text": "Shares jump", "label": "positive"}\n'
        '{"text": 42, "label": "negative"}\n',
        'data.jsonl:2: text must be a string, got int'),
    'wrong_timestamp_type': (
        'data.csv', 'text,label,published_at\nShares jump,positive,1700000000\n',
        "data.csv:2: published_at '1700000000' is not an ISO-8601 timestamp"),
    'duplicated_header': (
        'data.csv', 'text,label\nShares jump,positive\ntext,label\n'
        'Shares sink,negative\n',
        'data.csv:3: the header row is repeated'),
    'truncated_file': (
        'data.csv', 'text,label\nShares jump,positive\n"Shares sink, badly',
        'data.csv:3: malformed CSV: unexpected end of data'),
    'non_utf8_file': (
        'data.csv', 'text,label\nShares jump,positive\nCaf\xe9 chain closes,'
        'negative\n'.encode('latin-1'),
        "data.csv:3: bytes b'\\xe9' at offset 35 are not valid utf-8"),
    'zero_rows': ('data.csv', 'text,label\n', 'data.csv: no records'),
    'topic_outside_domain': (
        'data.csv', 'text,label,topic\nShares jump,positive,Markets\n'
        'Derby won,neutral,Sports\n',
        "data.csv:3: topic 'Sports' is not one of the 20 topics"),
    # Until a model learns the topic (issue 24), sentiment needs a label on
    # every record.
    'topics_without_labels': (
        'data.csv', 'text,label,topic\nShares jump,positive,Markets\n'
        'Fed holds,,Fed | Central Banks\nOil slides,,Energy | Oil\n',
        'data.csv: 2 of 3 records have a topic but no sentiment label; the '
        'models learn sentiment from every record'),
}


def _tree(root):
  """Every path under `root` with its size and modification time."""
  return {os.path.join(d, n): (os.path.getsize(os.path.join(d, n)),
                               os.path.getmtime(os.path.join(d, n)))
          for d, _, names in os.walk(root) for n in names}


@pytest.fixture
def serving_dir(tmp_path):
  """A serving directory holding an earlier production model version."""
  version = tmp_path / 'serving' / configs.PRODUCTION_MODEL_NAME / '1700000000'
  version.mkdir(parents=True)
  (version / 'saved_model.pb').write_bytes(b'earlier model')
  return tmp_path / 'serving'


@pytest.mark.parametrize('name', sorted(BAD_DATASETS))
def test_bad_dataset_stops_the_run_and_touches_nothing(
    name, write, tmp_path, serving_dir, capsys):
  file_name, content, message = BAD_DATASETS[name]
  path = write(f'{name}/{file_name}', content)
  before = _tree(serving_dir)
  output_dir = tmp_path / 'out'
  code = cli.main(['run', '--data', path, '--output_dir', str(output_dir),
                   '--serving_model_dir', str(serving_dir)])
  assert code == 2
  error = capsys.readouterr().err
  assert error.startswith('finsent: error: ') and message in error, error
  assert _tree(serving_dir) == before
  assert not output_dir.exists(), 'a component ran on bad data'


def _statistics(tmp_path, name, rows, topic=None):
  """Real TFDV statistics of `rows` as TextExampleGen writes them.

  `rows` are (text, label) written straight to tf.Examples, bypassing the
  readers, as another producer of examples could (a label None: none);
  each with `topic`, if given.
  """
  examples = tmp_path / f'{name}.tfrecord'
  with tf.io.TFRecordWriter(str(examples)) as writer:
    for text, label in rows:
      example = text_example_gen.record_to_example(
          loaders.Record(text=text, label='neutral'))
      if label is None:
        del example.features.feature['label']
      else:
        example.features.feature['label'].bytes_list.value[0] = label.encode()
      if topic is not None:
        example.features.feature['topic'].bytes_list.value.append(
            topic.encode())
      writer.write(example.SerializeToString())
  artifact = standard_artifacts.ExampleStatistics()
  artifact.uri = str(tmp_path / name)
  artifact.split_names = artifact_utils.encode_split_names(['train'])
  os.makedirs(os.path.join(artifact.uri, 'Split-train'))
  statistics = tfdv.generate_statistics_from_tfrecord(str(examples))
  with open(os.path.join(artifact.uri, 'Split-train', 'FeatureStats.pb'),
            'wb') as f:
    f.write(statistics.SerializeToString())
  return artifact


def _schema():
  artifact = standard_artifacts.Schema()
  artifact.uri = os.path.dirname(configs.SCHEMA_FILE)
  return artifact


def _schema_anomalies(tmp_path, statistics):
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(tmp_path / 'schema_anomalies')
  example_validator_executor.Executor().Do(
      {'statistics': [statistics], 'schema': [_schema()]},
      {'anomalies': [anomalies]}, {'exclude_splits': '[]'})
  return anomalies


def _drift_anomalies(tmp_path, statistics, baseline):
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(tmp_path / 'drift_anomalies')
  distribution_validator_executor.Executor().Do(
      {'statistics': [statistics], 'baseline_statistics': [baseline]},
      {'anomalies': [anomalies]},
      {'distribution_validator_config': pipeline_lib.create_drift_config(
          configs.DriftThresholds())})
  return anomalies


def _rows(counts):
  return [(HEADLINES[label], label) for label, n in counts.items()
          for _ in range(n)]


def test_accepted_data_passes_the_gate_and_becomes_the_baseline(tmp_path):
  statistics = _statistics(tmp_path, 'stats', _rows(
      {'negative': 30, 'neutral': 40, 'positive': 30}))
  validated = standard_artifacts.ExampleStatistics()
  validated.uri = str(tmp_path / 'validated')
  data_gate.DataGate.test_call(
      schema_anomalies=_schema_anomalies(tmp_path, statistics),
      drift_anomalies=_drift_anomalies(tmp_path, statistics, statistics),
      statistics=statistics, validated_statistics=validated)
  assert os.path.exists(os.path.join(validated.uri, 'Split-train',
                                     'FeatureStats.pb'))
  assert validated.split_names == statistics.split_names


def _gate_on_schema(tmp_path, statistics, **parameters):
  """DataGate on the schema check alone (no drift baseline)."""
  validated = standard_artifacts.ExampleStatistics()
  validated.uri = str(tmp_path / 'validated')
  data_gate.DataGate.test_call(
      schema_anomalies=_schema_anomalies(tmp_path, statistics),
      statistics=statistics, validated_statistics=validated, **parameters)


def test_records_without_a_label_stop_a_run_without_topic_data(tmp_path):
  """The schema lets a record carry a topic alone; a run whose models learn
  sentiment alone needs a label on every record, and says how many lack
  one."""
  statistics = _statistics(tmp_path, 'stats', _rows(
      {'negative': 5, 'neutral': 5, 'positive': 5}) + [
          ('Fed holds rates', None), ('Oil slides', None)],
                           topic='Macro')
  with pytest.raises(data_gate.DataValidationError,
                     match='labels: train: 2 of 17 records have no sentiment '
                     'label'):
    _gate_on_schema(tmp_path, statistics)
  # With topic data (every_record_labelled=0) the same records pass.
  _gate_on_schema(tmp_path, statistics, every_record_labelled=0)


@pytest.mark.parametrize('extra,topic,message', [
    ([('Up!', 'bullish')], None, r'schema: train: label: .*bullish'),
    ([], 'Sports', r'schema: train: topic: .*Sports'),
])
def test_label_or_topic_outside_the_schema_domain_is_named(
    tmp_path, extra, topic, message):
  statistics = _statistics(tmp_path, 'stats', _rows(
      {'negative': 5, 'neutral': 5, 'positive': 5}) + extra, topic=topic)
  with pytest.raises(data_gate.DataValidationError, match=message):
    _gate_on_schema(tmp_path, statistics)


def test_a_topic_of_the_schema_passes(tmp_path):
  _gate_on_schema(tmp_path, _statistics(tmp_path, 'stats', _rows(
      {'negative': 5, 'neutral': 5, 'positive': 5}), topic='M&A | Investments'))


def test_label_drift_beyond_the_threshold_is_named(tmp_path):
  baseline = _statistics(tmp_path, 'baseline', _rows(
      {'negative': 30, 'neutral': 40, 'positive': 30}))
  shifted = _statistics(tmp_path, 'shifted', _rows(
      {'negative': 60, 'neutral': 25, 'positive': 15}))
  with pytest.raises(data_gate.DataValidationError,
                     match=r'drift: train_train: label: The Linfty distance '
                     r'.* is 0.3 .*threshold 0.1. .* maximum difference is: '
                     r'negative'):
    data_gate.DataGate.test_call(
        schema_anomalies=_schema_anomalies(tmp_path, shifted),
        drift_anomalies=_drift_anomalies(tmp_path, shifted, baseline),
        statistics=shifted,
        validated_statistics=standard_artifacts.ExampleStatistics())


def test_serving_data_needs_no_label_but_training_data_does(tmp_path):
  examples = tmp_path / 'requests.tfrecord'
  with tf.io.TFRecordWriter(str(examples)) as writer:
    for text in HEADLINES.values():
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          'text': tf.train.Feature(bytes_list=tf.train.BytesList(
              value=[text.encode()]))})).SerializeToString())
  statistics = tfdv.generate_statistics_from_tfrecord(str(examples))
  schema = tfdv.load_schema_text(configs.SCHEMA_FILE)
  serving = tfdv.validate_statistics(statistics, schema,
                                     environment='SERVING')
  assert not serving.anomaly_info, serving
  training = tfdv.validate_statistics(statistics, schema,
                                      environment='TRAINING')
  assert {'label', 'length_bucket'} <= set(training.anomaly_info)


def test_the_curated_schema_lists_exactly_the_topics():
  schema = tfdv.load_schema_text(configs.SCHEMA_FILE)
  assert tuple(tfdv.get_domain(schema, 'topic').value) == configs.TOPICS


def test_empty_text_from_another_producer_is_named(tmp_path):
  statistics = _statistics(tmp_path, 'stats', _rows(
      {'negative': 5, 'neutral': 5, 'positive': 5}) + [('  ', 'neutral')])
  with pytest.raises(data_gate.DataValidationError,
                     match=r'schema: train: length_bucket: Examples contain '
                     r'values missing from the schema: 0 '):
    _gate_on_schema(tmp_path, statistics)


def test_anomalies_without_a_verdict_fail_closed(tmp_path):
  statistics = _statistics(tmp_path, 'stats', _rows(
      {'negative': 5, 'neutral': 5, 'positive': 5}))
  unjudged = standard_artifacts.ExampleAnomalies()
  unjudged.uri = str(tmp_path / 'unjudged')
  with pytest.raises(data_gate.DataValidationError,
                     match='schema: the validator recorded no verdict'):
    data_gate.DataGate.test_call(
        schema_anomalies=unjudged, statistics=statistics,
        validated_statistics=standard_artifacts.ExampleStatistics())


def _topic_csv(topics):
  return 'text,topic\n' + ''.join(f'Headline {i},"{topic}"\n'
                                  for i, topic in enumerate(topics))


ALL_TOPICS = _topic_csv(configs.TOPICS)
BAD_TOPIC_DATA = {
    'a_record_without_a_topic': (
        {'topic_train.csv': 'text,label,topic\nB,negative,\n' + ''.join(
            f'Headline {i},,"{topic}"\n'
            for i, topic in enumerate(configs.TOPICS)),
         'topic_valid.csv': ALL_TOPICS},
        'topic_train.csv: 1 of 21 records have no topic: every record of '
        'topic data needs one'),
    'a_topic_missing_from_training': (
        {'topic_train.csv': _topic_csv(configs.TOPICS[:-1]),
         'topic_valid.csv': ALL_TOPICS},
        f'topic_train.csv: no records of the topic(s) {configs.TOPICS[-1]}: '
        'the topic head needs examples of every topic'),
    'an_unknown_topic': (
        {'topic_train.csv': ALL_TOPICS + 'Derby won,Sports\n',
         'topic_valid.csv': ALL_TOPICS},
        "topic_train.csv:22: topic 'Sports' is not one of the 20 topics"),
}


@pytest.mark.parametrize('name', sorted(BAD_TOPIC_DATA))
def test_bad_topic_data_stops_the_run_before_any_component(
    name, write, tmp_path, capsys):
  files, message = BAD_TOPIC_DATA[name]
  for file_name, content in files.items():
    write(f'{name}/{file_name}', content)
  output_dir = tmp_path / 'out'
  code = cli.main(['run', '--topic_data', str(tmp_path / name),
                   '--pretrained_encoder', 'none', '--output_dir',
                   str(output_dir)])
  assert code == 2
  error = capsys.readouterr().err
  assert error.startswith('finsent: error: ') and message in error, error
  assert not output_dir.exists(), 'a component ran on bad data'


def test_topic_data_that_is_also_the_data_is_refused(tmp_path, capsys):
  code = cli.main(['run', '--topic_data', configs.SAMPLE_DATA,
                   '--pretrained_encoder', 'none', '--output_dir',
                   str(tmp_path / 'out')])
  assert code == 2
  assert (f'{configs.SAMPLE_DATA}: is also a file of --data (its all split)'
          in capsys.readouterr().err)


def _blessed_model_store(config, evaluators, export_dir):
  """An ML Metadata store at `config.metadata_path` where each of
  `evaluators` blessed a model whose export is `export_dir`, as TFX's
  Evaluator records it."""
  os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
  connection = metadata_store_pb2.ConnectionConfig()
  connection.sqlite.filename_uri = config.metadata_path
  store = mlmd.MetadataStore(connection)
  type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(
      name=standard_artifacts.ModelBlessing.TYPE_NAME))
  model = os.path.join(os.path.dirname(config.metadata_path), 'model')
  os.makedirs(model, exist_ok=True)
  if not os.path.exists(os.path.join(model, 'Format-Serving')):
    os.symlink(export_dir, os.path.join(model, 'Format-Serving'))
  for i, evaluator in enumerate(evaluators):
    blessing = metadata_store_pb2.Artifact(
        type_id=type_id,
        uri=os.path.join(config.pipeline_root, evaluator, 'blessing', str(i)))
    blessing.custom_properties['blessed'].int_value = 1
    blessing.custom_properties['current_model'].string_value = model
    store.put_artifacts([blessing])


def test_topic_data_is_refused_where_the_gates_baselines_have_no_topic_head(
    exported_model, tmp_path):
  """Each gate compares a new model with the last one it blessed, on both
  outputs: a pipeline whose blessed models learned sentiment alone cannot
  take topic data (TFMA would fail on the baseline), and says so before
  any component runs."""
  config = configs.PipelineConfig(output_dir=str(tmp_path),
                                  topic_data=str(tmp_path / 'topics'))
  _blessed_model_store(config, ['Evaluator.rnn', 'Evaluator.production'],
                       exported_model[0])
  with pytest.raises(loaders.DataFormatError,
                     match='the latest models blessed for production, rnn '
                     'have no topic head.*--pipeline_name NAME'):
    local_runner.check_topic_baselines(config)
  # Without topic data the same pipeline goes on.
  local_runner.check_topic_baselines(
      dataclasses.replace(config, topic_data=None))


def test_topic_data_is_accepted_where_the_baselines_have_a_topic_head(
    exported_topic_model, tmp_path):
  config = configs.PipelineConfig(output_dir=str(tmp_path),
                                  topic_data=str(tmp_path / 'topics'))
  _blessed_model_store(config, ['Evaluator.production'],
                       exported_topic_model[0])
  local_runner.check_topic_baselines(config)


def test_unlabelled_texts_that_are_also_the_data_are_refused(tmp_path, capsys):
  code = cli.main(['run', '--unlabelled', configs.SAMPLE_DATA,
                   '--output_dir', str(tmp_path / 'out')])
  assert code == 2
  assert (f'{configs.SAMPLE_DATA}: is also a file of --data (its all split): '
          'unlabelled texts must be texts the pipeline does not read '
          'already') in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()
