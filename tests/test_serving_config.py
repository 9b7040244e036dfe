"""serving.config_files and serving.deploy: TF Serving's files.

The files must be what TF Serving 2.16 accepts: models.config is checked
with TF Serving's own generated proto; the Kubernetes objects with the
kubernetes client's models.
"""

import copy
import dataclasses
import os
import posixpath

from google.protobuf import text_format
import kubernetes.client
import pytest
from tensorflow_serving.config import model_server_config_pb2
import yaml

from finsent.configs import PRODUCTION_MODEL_NAME
from finsent.serving import config_files as files
from finsent.serving.deploy import manifests as k8s
from finsent.serving.deploy import tf_serving_config as tfs
from finsent.serving.deploy import writer
from tests.conftest import FROM_SCRATCH


@pytest.fixture
def config(tmp_path):
  """Three versions of `sentiment`, one of `sentiment_rnn`, none of
  `sentiment_transformer`; staging dirs and stray files beside them. The
  models trained from scratch: their candidates are `rnn` and
  `transformer`."""
  root = tmp_path / 'serving_model'
  for version in ('1', '2', '3', '.9.incomplete'):
    (root / 'sentiment' / version).mkdir(parents=True)
  (root / 'sentiment' / '7').write_text('not a version directory')
  for version in ('5', '.9.incomplete'):
    (root / 'sentiment_rnn' / version).mkdir(parents=True)
  return dataclasses.replace(FROM_SCRATCH, serving_model_dir=str(root))


def _with_serving(config, **changes):
  return dataclasses.replace(
      config, serving=dataclasses.replace(config.serving, **changes))


def _models(text):
  parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
  return {m.name: m for m in parsed.model_config_list.config}


def _manifests(config):
  model_config = tfs.render_model_config(
      config, config.serving.models_mount_path,
      tfs.pushed_versions_under(config.serving_root))
  text = k8s.render_manifests(config, model_config,
                              tfs.render_batching_config(config),
                              tfs.render_monitoring_config(config))
  return {doc['kind']: doc for doc in yaml.safe_load_all(text)}


def _container(manifests):
  return manifests['Deployment']['spec']['template']['spec']['containers'][0]


def test_pushed_versions_skip_what_is_not_a_version(config):
  assert tfs.pushed_versions_under(config.serving_root) == {
      'sentiment': [1, 2, 3], 'sentiment_rnn': [5]}
  assert tfs.pushed_versions_under(
      os.path.join(config.serving_root, 'nowhere')) == {}


def test_models_config_labels_for_three_one_and_no_versions(config):
  models = _models(tfs.render_model_config(
      config, '/models', tfs.pushed_versions_under(config.serving_root)))
  # The never-pushed model is left out: TF Serving would wait for it.
  assert list(models) == ['sentiment', 'sentiment_rnn']
  for name, model in models.items():
    assert model.base_path == f'/models/{name}'
    assert model.model_platform == 'tensorflow'
    assert model.model_version_policy.latest.num_versions == 2
  assert dict(models['sentiment'].version_labels) == {'canary': 3, 'stable': 2}
  assert dict(models['sentiment_rnn'].version_labels) == {'stable': 5}


@pytest.mark.parametrize('num_versions, labels', [
    (1, {'canary': 3}),  # version 2 is not loaded: no `stable` on it
    (3, {'canary': 3, 'stable': 2}),
])
def test_labels_only_name_versions_the_policy_keeps(config, num_versions,
                                                    labels):
  config = _with_serving(config, num_versions=num_versions)
  models = _models(tfs.render_model_config(
      config, '/models', {'sentiment': [1, 2, 3]}))
  assert models['sentiment'].model_version_policy.latest.num_versions == (
      num_versions)
  assert dict(models['sentiment'].version_labels) == labels


def test_no_versions_kept_is_refused(config):
  with pytest.raises(ValueError, match='num_versions'):
    tfs.render_model_config(_with_serving(config, num_versions=0), '/m', {})


def test_models_config_round_trips(config, write):
  text = tfs.render_model_config(config, '/models', {'sentiment': [4, 8]})
  parsed = files.parse_model_config_file(write('models.config', text))
  assert text_format.MessageToString(parsed) == text


@pytest.mark.parametrize('text, line, message', [
    ('model_config_list {\n  config {\n    nmae: "x"\n  }\n}\n', 3,
     'no field named "nmae"'),
    ('model_config_list {\n  config {\n    version_labels { key: "a" '
     'value: "b" }\n  }\n}\n', 3, 'integer'),
    ('model_config_list {\n  config {\n    name: "a"\n'
     '    base_path: "relative/a"\n  }\n}\n', 4, 'not absolute'),
    ('model_config_list {\n  config { name: "a" base_path: "/a" }\n'
     '  config { name: "a" base_path: "/b" }\n}\n', None, 'listed twice'),
])
def test_bad_models_config_names_file_and_line(write, text, line, message):
  path = write('models.config', text)
  where = f'{path}:{line}' if line else path
  with pytest.raises(files.ServingConfigError) as raised:
    files.parse_model_config_file(path)
  assert str(raised.value).startswith(where + ':')
  assert message in str(raised.value)


def test_batching_config_round_trips(config, write):
  config = _with_serving(config, batching=dataclasses.replace(
      config.serving.batching, max_batch_size=32, num_batch_threads=4))
  text = tfs.render_batching_config(config)
  params = files.parse_batching_parameters_file(write('batching.config', text))
  assert params.max_batch_size.value == 32
  assert params.batch_timeout_micros.value == 2000
  assert params.max_enqueued_batches.value == 100
  assert params.num_batch_threads.value == 4
  assert params.thread_pool_name.value == 'model_server_batch_threads'
  assert params.DESCRIPTOR.full_name == 'tensorflow.serving.BatchingParameters'
  assert text_format.MessageToString(params) == text


def test_every_batching_field_parses(write):
  """All of TF Serving 2.16's BatchingParameters fields, as its docs write
  them."""
  params = files.parse_batching_parameters_file(write('batching.config', (
      'max_batch_size { value: 128 }\n'
      'batch_timeout_micros { value: 0 }\n'
      'max_enqueued_batches { value: 1000000 }\n'
      'num_batch_threads { value: 8 }\n'
      'thread_pool_name { value: "pool" }\n'
      'allowed_batch_sizes: 32\n'
      'allowed_batch_sizes: 128\n'
      'pad_variable_length_inputs: true\n'
      'enable_large_batch_splitting { value: true }\n'
      'max_execution_batch_size { value: 64 }\n')))
  assert list(params.allowed_batch_sizes) == [32, 128]
  assert params.pad_variable_length_inputs
  assert params.enable_large_batch_splitting.value
  assert params.max_execution_batch_size.value == 64


@pytest.mark.parametrize('text, line, message', [
    ('max_batch_size { value: 64 }\nmax_batch_sise { value: 8 }\n', 2,
     'no field named "max_batch_sise"'),
    ('max_batch_size { value: 64 }\n\nnum_batch_threads { value: "two" }\n',
     3, 'integer'),
    ('max_batch_size { value: 64 }\nnum_batch_threads { value: 0 }\n', 2,
     'num_batch_threads: must be positive'),
    ('max_batch_size { value: 64 }\nallowed_batch_sizes: 8\n'
     'allowed_batch_sizes: 32\n', 2, 'must equal max_batch_size'),
])
def test_bad_batching_config_names_file_and_line(write, text, line, message):
  path = write('batching.config', text)
  with pytest.raises(files.ServingConfigError) as raised:
    files.parse_batching_parameters_file(path)
  assert str(raised.value).startswith(f'{path}:{line}:')
  assert message in str(raised.value)


def test_monitoring_config_round_trips(config, write):
  text = tfs.render_monitoring_config(config)
  monitoring = files.parse_monitoring_config_file(
      write('monitoring.config', text))
  assert monitoring.prometheus_config.enable
  assert monitoring.prometheus_config.path == '/monitoring/prometheus/metrics'
  assert monitoring.DESCRIPTOR.full_name == 'tensorflow.serving.MonitoringConfig'


@pytest.mark.parametrize('text, line, message', [
    ('prometheus_config {\n  enable: true\n  paht: "/m"\n}\n', 3,
     'no field named "paht"'),
    ('prometheus_config {\n  enable: maybe\n}\n', 2, 'enable'),
    ('prometheus_config {\n  enable: true\n  path: "metrics"\n}\n', 3,
     'does not start with "/"'),
])
def test_bad_monitoring_config_names_file_and_line(write, text, line, message):
  path = write('monitoring.config', text)
  with pytest.raises(files.ServingConfigError) as raised:
    files.parse_monitoring_config_file(path)
  assert str(raised.value).startswith(f'{path}:{line}:')
  assert message in str(raised.value)


def test_model_server_args_use_tf_serving_flags(config):
  args = tfs.model_server_args(config, '/etc/tfs')
  flags = dict(arg[2:].split('=', 1) for arg in args)
  assert len(flags) == len(args)
  assert flags == {
      'port': '8500',
      'rest_api_port': '8501',
      'model_config_file': '/etc/tfs/models.config',
      'model_config_file_poll_wait_seconds': '1',
      'file_system_poll_wait_seconds': '1',
      'allow_version_labels_for_unavailable_models': 'true',
      'enable_batching': 'true',
      'batching_parameters_file': '/etc/tfs/batching.config',
      'monitoring_config_file': '/etc/tfs/monitoring.config',
  }


def test_manifests_run_tf_serving_on_the_pushed_models(config, tmp_path):
  manifests = _manifests(config)
  assert set(manifests) == {'ConfigMap', 'Deployment', 'Service'}
  serving = config.serving
  container = _container(manifests)
  pod = manifests['Deployment']['spec']['template']
  config_map = manifests['ConfigMap']

  assert container['image'] == serving.image
  assert manifests['Deployment']['spec']['replicas'] == serving.replicas
  assert container['command'] == [
      'tensorflow_model_server',
      *tfs.model_server_args(config, k8s.CONFIG_MOUNT_PATH)]

  # The config files: every one the server is told to read is in the
  # ConfigMap, where the ConfigMap is mounted, and parses.
  mounts = {m['name']: m for m in container['volumeMounts']}
  volumes = {v['name']: v for v in pod['spec']['volumes']}
  config_volume = next(n for n, v in volumes.items() if 'configMap' in v)
  assert volumes[config_volume]['configMap']['name'] == (
      config_map['metadata']['name'])
  file_flags = [a for a in container['command'][1:]
                if a.split('=', 1)[0].endswith('_file')]
  assert len(file_flags) == 3
  parsers = {files.MODEL_CONFIG_FILE: files.parse_model_config_file,
             files.BATCHING_CONFIG_FILE: files.parse_batching_parameters_file,
             files.MONITORING_CONFIG_FILE: files.parse_monitoring_config_file}
  for flag in file_flags:
    path = flag.split('=', 1)[1]
    assert posixpath.dirname(path) == mounts[config_volume]['mountPath']
    key = posixpath.basename(path)
    local = tmp_path / key
    local.write_text(config_map['data'][key])
    parsers[key](str(local))

  # The push destination: the claim, read-only, at models_mount_path, and
  # every base path under it.
  models_volume = next(n for n, v in volumes.items()
                       if 'persistentVolumeClaim' in v)
  claim = volumes[models_volume]['persistentVolumeClaim']
  assert claim == {'claimName': serving.models_volume_claim, 'readOnly': True}
  assert mounts[models_volume]['mountPath'] == serving.models_mount_path
  assert mounts[models_volume]['readOnly']
  for model in _models(config_map['data'][files.MODEL_CONFIG_FILE]).values():
    assert posixpath.dirname(model.base_path) == serving.models_mount_path

  # Ports, probes and metrics.
  ports = {p['name']: p['containerPort'] for p in container['ports']}
  assert ports == {'grpc': serving.grpc_port, 'http': serving.rest_api_port}
  readiness = container['readinessProbe']['httpGet']
  assert readiness['port'] == serving.rest_api_port
  assert readiness['path'] == f'/v1/models/{PRODUCTION_MODEL_NAME}'
  assert readiness['path'].rsplit('/', 1)[1] in config.served_model_names
  assert container['livenessProbe']['tcpSocket']['port'] == serving.grpc_port
  assert container['startupProbe']['tcpSocket']['port'] == serving.grpc_port
  annotations = pod['metadata']['annotations']
  assert annotations['prometheus.io/scrape'] == 'true'
  assert annotations['prometheus.io/port'] == str(serving.rest_api_port)
  assert annotations['prometheus.io/path'] == (
      files.parse_monitoring_config_file(
          str(tmp_path / files.MONITORING_CONFIG_FILE)).prometheus_config.path)
  resources = {'cpu': serving.cpu, 'memory': serving.memory}
  assert container['resources'] == {'requests': resources,
                                    'limits': resources}

  # The Service reaches these pods on the same ports.
  service = manifests['Service']['spec']
  assert service['selector'] == pod['metadata']['labels']
  assert manifests['Deployment']['spec']['selector']['matchLabels'] == (
      pod['metadata']['labels'])
  assert {p['name']: (p['port'], p['targetPort'])
          for p in service['ports']} == {
              'grpc': (serving.grpc_port, 'grpc'),
              'http': (serving.rest_api_port, 'http')}
  for manifest in manifests.values():
    assert manifest['metadata']['labels'] == pod['metadata']['labels']


def test_manifests_follow_serving_config(config):
  config = _with_serving(config, grpc_port=9000, rest_api_port=9001,
                         replicas=5, models_mount_path='/mnt/pushed')
  manifests = _manifests(config)
  container = _container(manifests)
  assert manifests['Deployment']['spec']['replicas'] == 5
  assert {p['containerPort'] for p in container['ports']} == {9000, 9001}
  assert container['readinessProbe']['httpGet']['port'] == 9001
  assert '--port=9000' in container['command']
  models = _models(manifests['ConfigMap']['data'][files.MODEL_CONFIG_FILE])
  assert models['sentiment'].base_path == '/mnt/pushed/sentiment'


def test_manifests_are_valid_kubernetes_objects(config):
  """The client's models keep only fields they know, so a round trip that
  changes nothing means no field is misspelled or misplaced."""
  api = kubernetes.client.ApiClient()
  for kind, manifest in _manifests(config).items():
    model = api._ApiClient__deserialize(  # pylint: disable=protected-access
        copy.deepcopy(manifest), f'V1{kind}')
    assert api.sanitize_for_serialization(model) == manifest


def test_only_start_time_files_roll_the_pods(config):
  def digest(config):
    annotations = _manifests(config)['Deployment']['spec']['template'][
        'metadata']['annotations']
    return annotations['finsent/startup-config-sha256']
  pushed = os.path.join(config.serving_root, 'sentiment', '4')
  before = digest(config)
  os.mkdir(pushed)
  assert digest(config) == before  # models.config is polled
  assert digest(_with_serving(config, batching=dataclasses.replace(
      config.serving.batching, max_batch_size=8))) != before


def test_write_serving_files(config, tmp_path):
  out = tmp_path / 'out'
  paths = writer.write_serving_files(config, str(out))
  assert [os.path.basename(p) for p in paths] == [
      'models.config', 'batching.config', 'monitoring.config',
      'kubernetes.yaml']
  assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)
  models = files.parse_model_config_file(paths[0]).model_config_list.config
  assert models[0].base_path == '/models/sentiment'
  assert dict(models[0].version_labels) == {'canary': 3, 'stable': 2}
  files.parse_batching_parameters_file(paths[1])
  files.parse_monitoring_config_file(paths[2])
  with open(paths[3], encoding='utf-8') as f:
    kinds = [doc['kind'] for doc in yaml.safe_load_all(f)]
  assert kinds == ['ConfigMap', 'Deployment', 'Service']

  # A push moves the labels when the files are written again.
  os.mkdir(os.path.join(config.serving_root, 'sentiment', '4'))
  writer.write_serving_files(config, str(out))
  models = files.parse_model_config_file(paths[0]).model_config_list.config
  assert dict(models[0].version_labels) == {'canary': 4, 'stable': 3}


def test_a_failed_write_leaves_the_old_file(config, tmp_path, monkeypatch):
  """A server polling models.config reads the old file or the new one."""
  out = tmp_path / 'out'
  writer.write_serving_files(config, str(out))
  before = (out / 'models.config').read_text()
  os.mkdir(os.path.join(config.serving_root, 'sentiment', '4'))

  def fail(*_):
    raise OSError('no space left')

  monkeypatch.setattr(writer.os, 'replace', fail)
  with pytest.raises(OSError, match='no space left'):
    writer.write_serving_files(config, str(out))
  assert (out / 'models.config').read_text() == before
  assert sorted(os.listdir(out)) == [
      'batching.config', 'kubernetes.yaml', 'models.config',
      'monitoring.config']
