"""`finsent compile-kubeflow`, `finsent render-tfjob` and the pipeline image
(kubeflow/, Dockerfile).

The compiled PipelineSpec is read back and checked against the local DAG
that `finsent run` runs; the Dockerfile is linted (hadolint) and parsed
(BuildKit's parser): there is no Docker engine here. That the code the
spec names imports from the image's layout is checked by copying what the
Dockerfile copies and importing it in a fresh Python from there alone.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import apache_beam
import dockerfile
import kfp
import pytest
import yaml

from finsent.kubeflow import runner
from finsent.kubeflow import tfjob
from finsent.commands import cli
from finsent import configs
from finsent.pipeline import pipeline as pipeline_lib
from finsent.commands import train_worker
from tests.conftest import ROOT

IMAGE = 'europe-docker.pkg.dev/acme/ml/finsent-pipeline:1.0'
OUTPUT_DIR = 'gs://acme-ml/finsent'
DATA = 'gs://acme-ml/data/twitter_financial_news_sentiment'
DOCKERFILE = os.path.join(ROOT, 'Dockerfile')
# What every task runs: TFX's Kubeflow v2 executor entrypoint.
TFX_EXECUTOR = ('tfx.orchestration.kubeflow.v2.container.'
                'kubeflow_v2_run_executor')
# The default run's candidates: the fine-tuned encoder and its students.
CANDIDATES = configs.PipelineConfig().candidates
STUDENT = 'rnn_student'
BEAM_NODES = ('TextExampleGen', 'StatisticsGen', 'Transform', 'BulkInferrer',
              *(f'Evaluator.{c}' for c in CANDIDATES), 'Evaluator.production')
# `finsent train-worker` flags for render-tfjob.
WORKER_FLAGS = [
    '--architecture', 'transformer',
    '--transform_graph', f'{OUTPUT_DIR}/Transform/transform_graph/7',
    '--transformed_examples', f'{OUTPUT_DIR}/Transform/transformed_examples/7',
    '--serving_model_dir', f'{OUTPUT_DIR}/multi_worker/model',
    '--model_run_dir', f'{OUTPUT_DIR}/multi_worker/model_run',
    '--max_epochs', '4']


def _compile(tmp_path, *flags):
  """Compiles into tmp_path; returns the pipeline job JSON."""
  output = tmp_path / 'finsent.json'
  assert cli.main(['compile-kubeflow', '--output', str(output), '--image',
                   IMAGE, '--output_dir', OUTPUT_DIR, '--data', DATA,
                   *flags]) == 0
  with open(output) as f:
    return json.load(f)


@pytest.fixture(scope='module')
def compiled_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('kubeflow')


@pytest.fixture(scope='module')
def spec(compiled_dir):
  return _compile(compiled_dir,
                  '--trainer_cpu_limit', '6', '--trainer_memory_limit', '24',
                  '--trainer_accelerator_type', 'NVIDIA_TESLA_T4',
                  '--trainer_accelerator_limit', '1', '--max_epochs', '7',
                  '--fine_tuning_epochs', '2')


@pytest.fixture(scope='module')
def local_pipeline(tmp_path_factory):
  return pipeline_lib.create_pipeline(configs.PipelineConfig(
      output_dir=str(tmp_path_factory.mktemp('local'))))


def _tasks(spec):
  return spec['pipelineSpec']['root']['dag']['tasks']


def _executor(spec, task):
  return spec['pipelineSpec']['deploymentSpec']['executors'][
      f'{task}_executor']['container']


def _node_id(task):
  # The compiler splits a blessed-model resolver into two queries,
  # <id>-model-resolver and <id>-model-blessing-resolver; ids have no '-'.
  return task.split('-')[0]


def _parameter(spec, task, name):
  """A task's constant parameter (PipelineSpec 2.1)."""
  return _tasks(spec)[task]['inputs']['parameters'][name]['runtimeValue'][
      'constant']


def test_kubeflow_pipelines_sdk_loads_the_spec_yaml(spec, compiled_dir):
  path = str(compiled_dir / 'finsent.yaml')
  with open(path) as f:
    assert yaml.safe_load(f) == spec['pipelineSpec']
  # kfp 2.13's own reader of pipeline YAML: a pipeline taking data_root.
  pipeline = kfp.components.load_component_from_file(path)
  assert pipeline.name == configs.PIPELINE_NAME
  assert list(pipeline.component_spec.inputs) == [runner.DATA_ROOT_PARAMETER]


def test_every_node_is_a_task_running_the_image(spec, local_pipeline):
  tasks = _tasks(spec)
  assert {_node_id(t) for t in tasks} == {
      n.id for n in local_pipeline.components}
  for task in tasks:
    executor = spec['pipelineSpec']['deploymentSpec']['executors'][
        f'{task}_executor']
    if 'container' in executor:
      assert executor['container']['image'] == IMAGE
      assert executor['container']['command'] == ['python', '-m',
                                                  TFX_EXECUTOR]
    else:  # resolvers run in Kubeflow's own driver, no image of ours
      assert set(executor) == {'resolver'}, (task, executor)


def test_dependencies_match_the_local_dag(spec, local_pipeline):
  tasks = _tasks(spec)
  for node in local_pipeline.components:
    compiled = {_node_id(d) for t in tasks if _node_id(t) == node.id
                for d in tasks[t].get('dependentTasks', [])}
    assert compiled == {u.id for u in node.upstream_nodes}, node.id


def test_data_root_is_a_runtime_parameter_read_by_example_gen(spec):
  root = spec['pipelineSpec']['root']
  assert root['inputDefinitions']['parameters'] == {
      runner.DATA_ROOT_PARAMETER: {'parameterType': 'STRING'}}
  assert spec['runtimeConfig']['parameterValues'] == {
      runner.DATA_ROOT_PARAMETER: DATA}
  assert _tasks(spec)['TextExampleGen']['inputs']['parameters'][
      'input_base'] == {'componentInputParameter': runner.DATA_ROOT_PARAMETER}
  splits = json.loads(_parameter(spec, 'TextExampleGen',
                                 'input_config'))['splits']
  assert splits == [{'name': n, 'pattern': p}
                    for n, p in configs.KubeflowConfig().data_splits]


def test_outputs_pushes_and_schema_are_where_the_cluster_reads(spec):
  assert spec['runtimeConfig']['gcsOutputDirectory'] == (
      f'{OUTPUT_DIR}/tfx_pipeline_output/{configs.PIPELINE_NAME}')
  config = configs.PipelineConfig()
  pushers = {f'Pusher.{a}': config.serving_model_name(a)
             for a in CANDIDATES}
  pushers[pipeline_lib.PRODUCTION_PUSHER] = configs.PRODUCTION_MODEL_NAME
  for task, name in pushers.items():
    destination = json.loads(_parameter(spec, task,
                                        'push_destination'))
    assert destination['filesystem']['base_directory'] == (
        f'{OUTPUT_DIR}/serving_model/{name}')
  assert _parameter(spec, 'ImportSchemaGen', 'schema_file') == (
      '/usr/local/lib/python3.11/site-packages/finsent/data/schema/'
      'schema.pbtxt')


def test_trainers_get_their_resources_and_flags(spec):
  for candidate in CANDIDATES:
    task = f'Trainer.{candidate}'
    resources = _executor(spec, task)['resources']
    assert resources['cpuLimit'] == 6 and resources['resourceCpuLimit'] == '6'
    assert resources['memoryLimit'] == 24
    assert resources['resourceMemoryLimit'] == '24G'
    assert resources['accelerator'] == {
        'type': 'NVIDIA_TESLA_T4', 'count': '1',
        'resourceType': 'NVIDIA_TESLA_T4', 'resourceCount': '1'}
    assert _parameter(spec, task, 'run_fn') == configs.RUN_FN
    custom = json.loads(_parameter(spec, task, 'custom_config'))
    assert custom['candidate'] == candidate
    assert custom['architecture'] == configs.candidate_architecture(candidate)
    # The Transformer is the packaged encoder: its epochs are fine-tuning's.
    assert custom['training']['max_epochs'] == (
        2 if candidate == 'transformer' else 7)
  assert json.loads(_parameter(spec, 'Transform', 'custom_config'))[
      'pretrained_encoder'] == configs.DEFAULT_ENCODER
  assert 'resources' not in _executor(spec, 'Transform')


def test_tuners_feed_the_trainers_and_get_their_resources(tmp_path):
  # Without students, each architecture is trained (and tuned) on labels.
  spec = _compile(tmp_path, '--enable_tuning', '--tuner_max_trials', '3',
                  '--trainer_cpu_limit', '6', '--skip_distillation')
  for architecture in configs.ARCHITECTURES:
    tuner, trainer = f'Tuner.{architecture}', f'Trainer.{architecture}'
    assert _parameter(spec, tuner, 'tuner_fn') == configs.TUNER_FN
    custom = json.loads(_parameter(spec, tuner, 'custom_config'))
    assert custom['tuning']['max_trials'] == 3
    assert _executor(spec, tuner)['resources']['cpuLimit'] == 6
    assert tuner in _tasks(spec)[trainer]['dependentTasks']
    assert _tasks(spec)[trainer]['inputs']['artifacts']['hyperparameters'][
        'taskOutputArtifact'] == {'producerTask': tuner,
                                  'outputArtifactKey': 'best_hyperparameters'}


def test_a_pretrained_encoder_reaches_transform_and_the_transformer(
    tmp_path, capsys):
  preset = 'gs://bucket/presets/bert_tiny_en_uncased'
  spec = _compile(tmp_path, '--pretrained_encoder', preset)
  transform = json.loads(_parameter(spec, 'Transform', 'custom_config'))
  assert transform['pretrained_encoder'] == preset
  transformer = json.loads(_parameter(spec, 'Trainer.transformer',
                                      'custom_config'))
  assert transformer['pretrained_encoder'] == preset
  assert transformer['training']['learning_rate'] == (
      configs.FineTuningConfig().learning_rate)
  student = json.loads(_parameter(spec, f'Trainer.{STUDENT}',
                                  'custom_config'))
  assert student['pretrained_encoder'] is None
  # A preset directory of this machine is not on the cluster.
  local = tmp_path / 'preset'
  local.mkdir()
  (local / 'config.json').write_text(
      '{"registered_name": "keras_hub>BertBackbone"}')
  (local / 'tokenizer.json').write_text('{}')
  for command, flags in ((_COMPILE, ['--image', IMAGE]),
                         (_TFJOB, ['--workers', '2', *WORKER_FLAGS])):
    with pytest.raises(SystemExit) as exited:
      cli.main([command, '--output', str(tmp_path / 'x.json'), *flags,
                '--pretrained_encoder', str(local)])
    assert exited.value.code == 2
    assert (f'--pretrained_encoder {local}: a directory of this machine, '
            "which the cluster's pods cannot read") in capsys.readouterr().err


def test_beam_components_get_the_beam_args(spec):
  for task in BEAM_NODES:
    args = _executor(spec, task)['args']
    for arg in configs.DIRECT_RUNNER_ARGS:
      assert arg in args, (task, args)


def test_dataflow_runs_the_pipeline_image_on_its_workers(tmp_path):
  spec = _compile(tmp_path, '--runner=DataflowRunner', '--project=acme',
                  '--region=europe-west1', '--temp_location=gs://acme-ml/tmp')
  for task in BEAM_NODES:
    args = _executor(spec, task)['args']
    assert f'--sdk_container_image={IMAGE}' in args
    assert '--experiments=upload_graph' in args
    assert '--runner=DataflowRunner' in args
    assert not [a for a in args if a.startswith('--direct_')]


_COMPILE, _TFJOB = 'compile-kubeflow', 'render-tfjob'


@pytest.mark.parametrize('command,flags,message', [
    (_COMPILE, ['--output', 'finsent.yaml'], '--output finsent.yaml: the '
     'pipeline job is JSON (FILE.json)'),
    (_COMPILE, ['--split', 'train'], 'argument --split: expected NAME=PATTERN'),
    (_COMPILE, ['--split', 'train=a.csv'],
     '--split: expected train and eval, or all'),
    (_COMPILE, ['--trainer_cpu_limit', '0'],
     'argument --trainer_cpu_limit: must be above 0'),
    (_COMPILE, ['--trainer_accelerator_type', 'NVIDIA_TESLA_T4'],
     '--trainer_accelerator_type needs --trainer_accelerator_limit'),
    (_COMPILE, ['--trainer_accelerator_limit', '2'],
     '--trainer_accelerator_limit needs --trainer_accelerator_type'),
    (_COMPILE, ['--runner=FlinkRunner'],
     '--runner=FlinkRunner needs --flink_master'),
    (_COMPILE, ['--max_epochs', '0'],
     'argument --max_epochs: must be at least 1'),
    (_COMPILE, ['--image', IMAGE, '--unlabelled', '/data/headlines.csv'],
     "--unlabelled /data/headlines.csv: a path of this machine, which the "
     "cluster's pods cannot read"),
    (_COMPILE, ['--image', IMAGE, '--unlabelled', 'gs://acme-ml/headlines'],
     '--unlabelled gs://acme-ml/headlines: unlabelled texts in object storage '
     'must be one file'),
    (_COMPILE, ['--image', IMAGE, '--topic_data', '/data/topics'],
     "--topic_data /data/topics: a path of this machine, which the "
     "cluster's pods cannot read"),
    (_COMPILE, ['--strategy', 'multi_worker_mirrored'],
     '--strategy multi_worker_mirrored: each Trainer of the compiled '
     'pipeline is one pod'),
    (_TFJOB, ['--workers', '1', *WORKER_FLAGS],
     '--workers: a multi-worker Trainer needs 2 or more'),
    (_TFJOB, ['--workers', '2', '--cpu_limit', 'nan', *WORKER_FLAGS],
     'argument --cpu_limit: must be above 0, got nan'),
    (_TFJOB, ['--workers', '2', '--memory_limit', 'inf', *WORKER_FLAGS],
     'argument --memory_limit: must be a finite number, got inf'),
    (_TFJOB, ['--workers', '2', *WORKER_FLAGS[2:]],
     'the following arguments are required: --architecture'),
    (_TFJOB, ['--workers', '2', *WORKER_FLAGS, '--strategy', 'mirrored'],
     '--strategy mirrored: the workers of a TFJob train with auto or '
     'multi_worker_mirrored'),
    (_TFJOB, ['--workers', '2', '--accelerator_type', 'NVIDIA_TESLA_T4',
              '--accelerator_limit', '1', *WORKER_FLAGS],
     "--accelerator_type 'NVIDIA_TESLA_T4': on Kubernetes an accelerator is "
     'a resource name such as nvidia.com/gpu'),
    (_TFJOB, ['--workers', '2', '--accelerator_limit', '1', *WORKER_FLAGS],
     '--accelerator_type and --accelerator_limit go together'),
])
def test_bad_flags_stop_before_anything_is_written(tmp_path, capsys, command,
                                                   flags, message):
  output = tmp_path / 'written.json'
  with pytest.raises(SystemExit) as exited:
    cli.main([command, '--output', str(output), *flags])
  assert exited.value.code == 2
  assert message in capsys.readouterr().err
  assert not output.exists()


# --- The image ---

def _instructions():
  return dockerfile.parse_file(DOCKERFILE)


def _one(cmd):
  found = [i for i in _instructions() if i.cmd == cmd]
  assert len(found) == 1, (cmd, found)
  return found[0]


def test_dockerfile_passes_hadolint():
  hadolint = shutil.which('hadolint', path=os.path.dirname(sys.executable))
  result = subprocess.run([hadolint, '--no-color', DOCKERFILE],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr


def test_image_matches_this_python_and_beam_and_boots_beam_workers():
  base = _one('FROM').value[0]
  assert base.startswith(
      f'python:{".".join(map(str, sys.version_info[:3]))}-slim-bookworm')
  beam_copy = next(i for i in _instructions() if i.cmd == 'COPY' and i.flags)
  assert beam_copy.flags == (
      f'--from=apache/beam_python{sys.version_info.major}.'
      f'{sys.version_info.minor}_sdk:{apache_beam.__version__}',)
  # Beam's workers start the image's ENTRYPOINT; the spec's tasks give
  # their own command, TFX's executor, which the lock installs.
  assert _one('ENTRYPOINT').value == ('/opt/apache/beam/boot',)
  assert _one('ENTRYPOINT').json
  assert importlib.util.find_spec(TFX_EXECUTOR) is not None
  # finsent is installed (not editable) into the base image's
  # site-packages, where the compiled spec looks for its schema file; no
  # PYTHONPATH exposes its folders under their own, generic names.
  assert configs.KubeflowConfig().image_package_dir == (
      f'/usr/local/lib/python{sys.version_info.major}.'
      f'{sys.version_info.minor}/site-packages/finsent')
  install, = [i for i in _instructions() if i.cmd == 'RUN' and
              'install' in i.value[0] and '-r requirements' not in
              i.value[0]]
  assert ' --no-deps --no-build-isolation . ' in install.value[0]
  assert ' -e ' not in install.value[0]
  env = _one('ENV').value
  assert 'PYTHONPATH' not in env[::2]


def _copied_files(destination):
  """Lays out what the Dockerfile's plain COPYs copy, as in the image."""
  for instruction in _instructions():
    if instruction.cmd != 'COPY' or instruction.flags:
      continue
    *sources, target = instruction.value
    for source in sources:
      path = os.path.join(ROOT, source)
      where = os.path.join(destination, target)
      if os.path.isdir(path):
        shutil.copytree(path, where, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns('__pycache__', 'build'))
        continue
      if target.endswith('/'):
        where = os.path.join(where, os.path.basename(source))
      os.makedirs(os.path.dirname(where), exist_ok=True)
      shutil.copy(path, where)


def test_what_the_spec_names_resolves_in_the_image_layout(spec, tmp_path):
  image_root = tmp_path / 'pipeline'
  image_root.mkdir()
  _copied_files(str(image_root))
  assert (image_root / 'requirements' / 'lock.txt').exists()
  names = set()
  for task in _tasks(spec):
    executor = spec['pipelineSpec']['deploymentSpec']['executors'][
        f'{task}_executor']
    args = executor.get('container', {}).get('args', [])
    if '--executor_class_path' in args:
      names.add(args[args.index('--executor_class_path') + 1])
  names |= {_parameter(spec, 'Transform', 'preprocessing_fn'),
            _parameter(spec, f'Trainer.{STUDENT}', 'run_fn')}
  assert 'finsent.components.text_example_gen.Executor' in names
  # The commands a pod runs (a TFJob's `finsent train-worker`), and
  # `finsent bench` from the installed package.
  names |= {'finsent.commands.cli.main', 'finsent.commands.bench.main'}
  # Installed from the copied tree as the image installs it, into a folder
  # standing for the image's site-packages.
  site_packages = tmp_path / 'site-packages'
  install = subprocess.run(
      [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
       '--no-build-isolation', '--target', str(site_packages),
       str(image_root)], capture_output=True, text=True, timeout=300,
      check=False)
  assert install.returncode == 0, install.stderr[-3000:]
  # In a fresh Python that sees that folder and not this checkout (the
  # editable install's finder is dropped): each name imports from it.
  probe = f'''
import importlib, json, sys
sys.meta_path = [f for f in sys.meta_path
                 if 'editable' not in getattr(f, '__module__', '')]
sys.path_hooks = [h for h in sys.path_hooks
                  if 'editable' not in getattr(h, '__module__', '')]
sys.path_importer_cache.clear()
sys.path = [{str(site_packages)!r}] + [p for p in sys.path if p != {ROOT!r}]
found = {{}}
for name in {sorted(names)!r}:
    module_name, attribute = name.rsplit('.', 1)
    module = importlib.import_module(module_name)
    getattr(module, attribute)
    found[name] = module.__file__
print(json.dumps(found))
'''
  result = subprocess.run([sys.executable, '-c', probe], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  found = json.loads(result.stdout.strip().splitlines()[-1])
  assert sorted(found) == sorted(names)
  for name, path in found.items():
    if not name.startswith('tfx.'):
      assert path.startswith(str(site_packages / 'finsent')), (name, path)
  schema = _parameter(spec, 'ImportSchemaGen', 'schema_file')
  package_dir = configs.KubeflowConfig().image_package_dir
  assert schema.startswith(package_dir + '/')
  assert (site_packages / 'finsent' /
          os.path.relpath(schema, package_dir)).is_file()


# --- Multi-worker training on Kubernetes (finsent render-tfjob) ---



def test_tfjob_runs_train_worker_on_every_pod(tmp_path):
  output = tmp_path / 'tfjob.yaml'
  assert cli.main(['render-tfjob', '--workers', '3', '--image', IMAGE,
                   '--cpu_limit', '4', '--memory_limit', '16',
                   '--accelerator_type', 'nvidia.com/gpu',
                   '--accelerator_limit', '1', '--output', str(output),
                   *WORKER_FLAGS]) == 0
  with open(output) as f:
    job = yaml.safe_load(f)
  assert (job['apiVersion'], job['kind']) == ('kubeflow.org/v1', 'TFJob')
  assert job['metadata']['name'] == 'finsent-train-transformer'
  workers = job['spec']['tfReplicaSpecs']
  assert list(workers) == ['Worker']  # no chief pod: worker 0 is the chief
  assert workers['Worker']['replicas'] == 3
  container, = workers['Worker']['template']['spec']['containers']
  assert container['name'] == tfjob.CONTAINER_NAME
  assert container['image'] == IMAGE
  assert container['command'][:2] == ['finsent', 'train-worker']
  # What each pod runs is what `finsent train-worker` itself parses.
  worker = train_worker.build_parser('finsent train-worker').parse_args(
      container['command'][2:])
  assert worker.architecture == 'transformer'
  assert worker.transform_graph == f'{OUTPUT_DIR}/Transform/transform_graph/7'
  assert worker.max_epochs == 4 and worker.strategy == 'auto'
  limits = {'cpu': '4', 'memory': '16G', 'nvidia.com/gpu': '1'}
  assert container['resources'] == {'requests': limits, 'limits': limits}


def test_topic_data_in_a_bucket_joins_the_data_before_the_gate(tmp_path):
  spec = _compile(tmp_path, '--topic_data',
                  'gs://acme-ml/data/topic_train.csv')
  tasks = _tasks(spec)
  assert _parameter(spec, pipeline_lib.TOPIC_EXAMPLE_GEN,
                    'input_base') == 'gs://acme-ml/data'
  assert json.loads(_parameter(spec, pipeline_lib.TOPIC_EXAMPLE_GEN,
                               'input_config'))['splits'] == [
      {'name': 'all', 'pattern': 'topic_train.csv'}]
  assert set(tasks[pipeline_lib.TOPIC_MERGE]['dependentTasks']) == {
      'TextExampleGen', pipeline_lib.TOPIC_EXAMPLE_GEN}
  assert pipeline_lib.TOPIC_MERGE in tasks['StatisticsGen']['dependentTasks']
  assert pipeline_lib.TOPIC_MERGE in tasks['Transform']['dependentTasks']
  # The teacher's students learn both heads from its BulkInferrer.
  assert pipeline_lib.TOPIC_MERGE in tasks[pipeline_lib.BULK_INFERRER][
      'dependentTasks']
  assert 'teacher_topic_probabilities' in _parameter(
      spec, pipeline_lib.BULK_INFERRER, 'output_example_spec')


def test_unlabelled_texts_in_a_bucket_reach_bulk_inferrer(tmp_path):
  spec = _compile(tmp_path, '--unlabelled', 'gs://acme-ml/data/topic.csv')
  tasks = _tasks(spec)
  example_gen = tasks[pipeline_lib.UNLABELLED_EXAMPLE_GEN]
  assert _parameter(spec, pipeline_lib.UNLABELLED_EXAMPLE_GEN,
                    'input_base') == 'gs://acme-ml/data'
  assert json.loads(_parameter(spec, pipeline_lib.UNLABELLED_EXAMPLE_GEN,
                               'input_config'))['splits'] == [
      {'name': configs.UNLABELLED_SPLIT, 'pattern': 'topic.csv'}]
  assert not example_gen.get('dependentTasks')
  assert set(tasks['MergeExamples']['dependentTasks']) == {
      'TextExampleGen', pipeline_lib.UNLABELLED_EXAMPLE_GEN}
  inferrer = tasks[pipeline_lib.BULK_INFERRER]
  assert 'MergeExamples' in inferrer['dependentTasks']
  # The students wait for the teacher's blessing.
  assert "metadata['blessed'] == 1.0" in inferrer['triggerPolicy']['condition']
