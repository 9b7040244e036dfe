"""`finsent run --second_source PATH`: every architecture's model scored by
TFMA on data from another source, beside the eval split, never trained on.

The DAG's wiring is in tests/test_pipeline.py; here: the files it takes and
refuses (before any component runs), its nodes run for real by TFX's
LocalDagRunner on Beam with the summary read back from ML Metadata, and the
compiled Kubeflow pipeline. A whole run with it is the first run of
tests/test_pipeline_e2e.py.
"""

import copy
import dataclasses
import json
import os
import shutil
import sys

import pytest
import yaml
from tfx import v1 as tfx

from finsent import configs
from finsent.commands import cli
from finsent.data import loaders
from finsent.pipeline import local_runner
from finsent.pipeline import pipeline as pipeline_lib
from finsent.pipeline import summary as summary_lib
from tests.conftest import FROM_SCRATCH
from tests.conftest import ROOT

# 851 Reuters passages, labelled positive/negative/neutral (its SOURCE.txt).
FINENTITY = os.path.join(ROOT, '..', 'shared', 'data', 'finentity',
                         'finentity_sentences.csv')

# The same three headlines in each format the readers take.
OTHER_SOURCE = {
    'other.csv': ('text,label\nLender slashes its dividend,negative\n'
                  'Quarterly results due on Monday,neutral\n'
                  'Orders jump to a record,positive\n'),
    'twitter_fns.csv': ('text,label\nLender slashes its dividend,0\n'
                        'Quarterly results due on Monday,2\n'
                        'Orders jump to a record,1\n'),
    'other.jsonl': ('{"text": "Lender slashes its dividend", "label": '
                    '"negative"}\n{"text": "Quarterly results due on Monday",'
                    ' "label": "neutral"}\n{"text": "Orders jump to a record",'
                    ' "label": "positive"}\n'),
    'phrasebank.txt': ('Lender slashes its dividend@negative\n'
                       'Quarterly results due on Monday@neutral\n'
                       'Orders jump to a record@positive\n'),
}
ONE_EACH = {'negative': 1, 'neutral': 1, 'positive': 1}


def _data_layout():
  return loaders.resolve_input(configs.SAMPLE_DATA)


@pytest.mark.parametrize('name', sorted(OTHER_SOURCE))
def test_every_format_of_the_readers_is_one_split_with_labels_mapped(
    name, write, capsys):
  path = write(name, OTHER_SOURCE[name])
  layout = pipeline_lib.second_source_layout(path)
  assert layout.splits == {pipeline_lib.SECOND_SOURCE: name}
  assert layout.input_base == os.path.dirname(path)
  local_runner.check_second_source(
      configs.PipelineConfig(second_source=path), _data_layout())
  assert capsys.readouterr().out == (
      f'Second source (scored, never trained on): {path}\n'
      '  3 records, 1 negative, 1 neutral, 1 positive\n')


def test_a_folder_of_one_type_is_one_split(write, tmp_path):
  write('other/a.jsonl', OTHER_SOURCE['other.jsonl'])
  write('other/b.jsonl', OTHER_SOURCE['other.jsonl'])
  layout = pipeline_lib.second_source_layout(str(tmp_path / 'other'))
  assert layout.splits == {pipeline_lib.SECOND_SOURCE: '*.jsonl'}
  counts = layout.counts()
  assert list(counts) == [pipeline_lib.SECOND_SOURCE]
  assert counts[pipeline_lib.SECOND_SOURCE].labels == {
      label: 2 for label in ONE_EACH}


def test_finentity_reads_as_a_canonical_csv():
  assert loaders.detect_format(FINENTITY) == 'csv'
  counts = pipeline_lib.second_source_layout(FINENTITY).counts()
  assert counts[pipeline_lib.SECOND_SOURCE] == loaders.SplitCounts(
      records=851, labels={'negative': 180, 'neutral': 490, 'positive': 181},
      topics={})


# (files to write, the --second_source under tmp_path, what the error says)
BAD_SECOND_SOURCES = {
    'missing_file': ({}, 'gone.csv', 'gone.csv: no such file or folder'),
    'unreadable_format': ({'scores.xlsx': 'PK\x03\x04'}, 'scores.xlsx',
                          "scores.xlsx: unsupported file type '.xlsx'"),
    'bad_label': ({'other.csv': 'text,label\nOrders jump,bullish\n'},
                  'other.csv', "other.csv:2: label 'bullish' is not one of"),
    'bad_json': ({'other.jsonl': '{"text": "Orders jump",\n'}, 'other.jsonl',
                 'other.jsonl:1: invalid JSON'),
    'topics_only': ({'other.csv': 'text,topic\nOrders jump,Earnings\n'},
                    'other.csv', 'other.csv: 1 of 1 records have a topic but '
                    'no sentiment label'),
    'empty_csv': ({'other.csv': ''}, 'other.csv', 'other.csv: no records'),
    'header_only': ({'other.csv': 'text,label\n'}, 'other.csv',
                    'other.csv: no records'),
    'empty_phrasebank': ({'other.txt': '\n'}, 'other.txt',
                         'other.txt: no records'),
    'empty_folder': ({'other/notes.md': 'none'}, 'other',
                     'expected data files of one type'),
    'train_and_eval_folder': (
        {'other/sent_train.csv': OTHER_SOURCE['other.csv'],
         'other/sent_valid.csv': OTHER_SOURCE['other.csv']}, 'other',
        'a second source is read as one split, but this folder is laid '
        'out as train (sent_train.csv) and eval (sent_valid.csv): name the '
        'one file to read'),
}


@pytest.mark.parametrize('name', sorted(BAD_SECOND_SOURCES))
def test_a_bad_second_source_stops_the_run_before_any_component(
    name, write, tmp_path, capsys):
  files, second_source, message = BAD_SECOND_SOURCES[name]
  for file_name, content in files.items():
    write(file_name, content)
  output_dir = tmp_path / 'out'
  code = cli.main(['run', '--second_source', str(tmp_path / second_source),
                   '--output_dir', str(output_dir)])
  assert code == 2
  error = capsys.readouterr().err
  assert error.startswith('finsent: error: ') and message in error, error
  assert not output_dir.exists(), 'a component ran'


def test_the_training_data_itself_is_refused(tmp_path, capsys):
  code = cli.main(['run', '--second_source', configs.SAMPLE_DATA,
                   '--output_dir', str(tmp_path / 'out')])
  assert code == 2
  assert (f'{configs.SAMPLE_DATA}: is also a file of --data (its all split)'
          in capsys.readouterr().err)
  assert not (tmp_path / 'out').exists()


def test_object_storage_is_refused_by_a_local_run(tmp_path, capsys):
  with pytest.raises(SystemExit) as exited:
    cli.main(['run', '--second_source', 'gs://acme-ml/data/other.csv',
              '--output_dir', str(tmp_path / 'out')])
  assert exited.value.code == 2
  assert ('--second_source gs://acme-ml/data/other.csv: a local run reads a '
          'local file or folder' in capsys.readouterr().err)


def test_the_flag_and_the_config_file_reach_the_config(tmp_path):
  from finsent.commands import run as run_command
  _, _, config = run_command.parse(['run', '--second_source', FINENTITY])
  assert config.second_source == FINENTITY
  assert run_command.parse(['run'])[2].second_source is None
  settings = tmp_path / 'run.yaml'
  settings.write_text(yaml.safe_dump({'second_source': FINENTITY}))
  _, _, config = run_command.parse(['run', '--config', str(settings)])
  assert config.second_source == FINENTITY


# --- Its nodes, run by TFX ---

@pytest.fixture(scope='module')
def scored_run(exported_model, tmp_path_factory, module_monkeypatch):
  """TextExampleGen.second_source and Evaluator.second_source.rnn, as
  create_second_source makes them, run by TFX's LocalDagRunner on Beam with
  ML Metadata in SQLite, scoring the conftest's exported RNN (imported as a
  Model artifact) on a JSONL file; then the run summary read back."""
  root = tmp_path_factory.mktemp('second_source')
  other = root / 'other.jsonl'
  other.write_text(OTHER_SOURCE['other.jsonl'] * 2, encoding='utf-8')
  # A Model artifact's layout: the SavedModel under Format-Serving.
  model_dir = root / 'model'
  shutil.copytree(exported_model[0], model_dir / 'Format-Serving')
  config = dataclasses.replace(FROM_SCRATCH, output_dir=str(root / 'out'),
                               second_source=str(other))
  model = tfx.dsl.Importer(
      source_uri=str(model_dir),
      artifact_type=tfx.types.standard_artifacts.Model).with_id('Model')
  nodes = pipeline_lib.create_second_source(
      config, {'rnn': model.outputs['result']}, after=[model])
  # TFX's Beam executors parse sys.argv with absl's flags: pytest's own
  # would be refused (local_runner keeps `finsent run`'s out the same way).
  module_monkeypatch.setattr(sys, 'argv', sys.argv[:1])
  tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=[model, *nodes],
      metadata_connection_config=(
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=['--direct_running_mode=in_memory',
                          '--direct_num_workers=1']))
  return config, str(other), summary_lib.summarize_latest_run(config)


@pytest.fixture(scope='module')
def module_monkeypatch():
  with pytest.MonkeyPatch.context() as patch:
    yield patch


def test_every_row_is_scored_through_the_serving_signature(scored_run):
  config, other, summary = scored_run
  assert summary.second_source == other
  rnn, transformer = (next(m for m in summary.models if m.candidate == a)
                      for a in configs.ARCHITECTURES)
  scored = rnn.second_source
  # All six rows, in the one split: nothing hash-split away.
  assert scored['example_count'] == 6
  assert 0 <= scored['accuracy'] <= 1 and 0 <= scored['macro_f1'] <= 1
  assert {'recall_negative', 'brier_score',
          'expected_calibration_error'} <= set(scored)
  assert transformer.second_source is None  # no Evaluator scored it
  examples = os.path.join(config.pipeline_root,
                          pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN, 'examples')
  execution, = os.listdir(examples)
  assert os.listdir(os.path.join(examples, execution)) == [
      f'Split-{pipeline_lib.SECOND_SOURCE}']


def test_its_evaluator_validates_nothing_and_blesses_nothing(scored_run):
  config, _, summary = scored_run
  evaluator = next(c for c in summary.components if c.node_id ==
                   f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.rnn')
  assert evaluator.state == 'COMPLETE'
  blessing, = evaluator.outputs['blessing']
  # TFX's Evaluator writes a verdict only when there are thresholds.
  assert 'blessed' not in blessing.custom_properties
  assert not os.path.exists(os.path.join(blessing.uri, 'BLESSED'))
  assert not os.listdir(blessing.uri)


def test_the_summary_shows_it_beside_the_eval_split(scored_run):
  _, other, summary = scored_run
  text = summary_lib.format_summary(summary)
  header = next(line for line in text.splitlines()
                if line.lstrip().startswith('model '))
  assert header.split()[:5] == ['model', 'accuracy', 'macro-F1', '2nd',
                                'acc']
  assert '2nd F1' in header
  rnn = summary.models[configs.ARCHITECTURES.index('rnn')]
  row = next(line for line in text.splitlines()
             if line.lstrip().startswith('rnn '))
  # No eval split in this run ('-'), then the second source's figures.
  assert row.split()[1:5] == [
      '-', '-', f'{rnn.second_source["accuracy"]:.4f}',
      f'{rnn.second_source["macro_f1"]:.4f}']
  assert (f'(2nd acc, 2nd F1: TFMA on the second source {other}, '
          in text)
  saved = json.loads(json.dumps(summary.to_json()))
  assert saved['second_source'] == other
  assert saved['models'][configs.ARCHITECTURES.index('rnn')][
      'second_source'] == rnn.second_source


def test_without_a_second_source_the_summary_is_as_before(scored_run):
  summary = copy.deepcopy(scored_run[2])
  summary.second_source = None
  for model in summary.models:
    model.second_source = None
  text = summary_lib.format_summary(summary)
  assert '2nd' not in text
  assert summary.to_json()['second_source'] is None


def test_the_summary_says_how_an_encoder_was_fine_tuned(scored_run):
  summary = copy.deepcopy(scored_run[2])
  model = summary.models[0]
  model.pretrained_encoder, model.learning_rate = 'all-minilm-l6-v2', 5e-5
  line = f'  {model.candidate}: the pretrained encoder all-minilm-l6-v2, '
  assert (line + 'fine-tuned at learning rate 5e-05\n'
          in summary_lib.format_summary(summary))
  model.head_epochs = 2
  assert (line + 'fine-tuned at learning rate 5e-05 after 2 epochs of its '
          'head alone (LP-FT)\n' in summary_lib.format_summary(summary))


# --- On Kubeflow ---

IMAGE = 'europe-docker.pkg.dev/acme/ml/finsent-pipeline:1.0'
BUCKET_FILE = 'gs://acme-ml/data/finentity/finentity_sentences.csv'


def _compile(tmp_path, second_source):
  """compile-kubeflow with `second_source` in a --config file (a knob of
  `finsent run`'s; the compile reads it from the file)."""
  settings = tmp_path / 'settings.yaml'
  settings.write_text(yaml.safe_dump({'second_source': second_source}))
  output = tmp_path / 'finsent.json'
  code = cli.main(['compile-kubeflow', '--output', str(output), '--image',
                   IMAGE, '--output_dir', 'gs://acme-ml/finsent', '--data',
                   'gs://acme-ml/data/twitter_financial_news_sentiment',
                   '--config', str(settings)])
  assert code == 0
  with open(output) as f:
    return json.load(f)['pipelineSpec']


def test_kubeflow_reads_a_bucket_file_after_the_pushes(tmp_path):
  spec = _compile(tmp_path, BUCKET_FILE)
  tasks = spec['root']['dag']['tasks']
  example_gen = tasks[pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN]
  parameters = example_gen['inputs']['parameters']
  assert parameters['input_base']['runtimeValue']['constant'] == (
      'gs://acme-ml/data/finentity')
  assert json.loads(parameters['input_config']['runtimeValue']['constant'])[
      'splits'] == [{'name': pipeline_lib.SECOND_SOURCE,
                     'pattern': 'finentity_sentences.csv'}]
  candidates = configs.PipelineConfig().candidates
  assert set(example_gen['dependentTasks']) == {
      *(f'Pusher.{c}' for c in candidates), pipeline_lib.PRODUCTION_PUSHER}
  executors = spec['deploymentSpec']['executors']
  for architecture in candidates:
    task = f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.{architecture}'
    assert set(tasks[task]['dependentTasks']) == {
        f'Trainer.{architecture}', pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN}
    args = executors[f'{task}_executor']['container']['args']
    for arg in configs.DIRECT_RUNNER_ARGS:
      assert arg in args, (task, args)
  # Nothing of the pipeline's waits for them.
  second_source_tasks = {t for t in tasks if pipeline_lib.SECOND_SOURCE in t}
  assert not [t for t, task in tasks.items()
              if set(task.get('dependentTasks', [])) & second_source_tasks
              and t not in second_source_tasks]


@pytest.mark.parametrize('second_source,message', [
    (FINENTITY, f'--second_source {FINENTITY}: a path of this machine, '
     "which the cluster's pods cannot read"),
    ('gs://acme-ml/data/finentity', '--second_source '
     'gs://acme-ml/data/finentity: a second source in object storage must '
     'be one file'),
])
def test_kubeflow_refuses_what_its_pods_cannot_read(tmp_path, capsys,
                                                    second_source, message):
  settings = tmp_path / 'settings.yaml'
  settings.write_text(yaml.safe_dump({'second_source': second_source}))
  output = tmp_path / 'finsent.json'
  with pytest.raises(SystemExit) as exited:
    cli.main(['compile-kubeflow', '--output', str(output), '--image', IMAGE,
              '--config', str(settings)])
  assert exited.value.code == 2
  assert message in capsys.readouterr().err
  assert not output.exists()
