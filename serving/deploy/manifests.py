"""Kubernetes manifests that serve the pushed models with TF Serving.

Three objects, rendered from PipelineConfig alone so that what runs in the
cluster is what the pipeline's config says:

- a ConfigMap with models.config, batching.config and monitoring.config
  (tf_serving_config), mounted as a directory, not per file
  (subPath), so an update reaches the running servers, which poll
  models.config;
- a Deployment of ServingConfig.image running `tensorflow_model_server`
  with those files, the push destination mounted read-only from a
  PersistentVolumeClaim (ReadOnlyMany or ReadWriteMany with more than one
  replica), and probes fitted to how TF Serving starts;
- a Service for the gRPC and REST ports.
"""

import hashlib
from typing import Any, Dict

import yaml

from finsent.configs import PipelineConfig
from finsent.configs import PRODUCTION_MODEL_NAME
from finsent.serving.config_files import BATCHING_CONFIG_FILE
from finsent.serving.config_files import MODEL_CONFIG_FILE
from finsent.serving.config_files import MONITORING_CONFIG_FILE
from finsent.serving.config_files import PROMETHEUS_PATH
from finsent.serving.deploy.tf_serving_config import model_server_args

# Where the ConfigMap's files are in the container: model_server_args'
# config_dir.
CONFIG_MOUNT_PATH = '/etc/tensorflow-serving'
CONTAINER_NAME = 'tensorflow-serving'
GRPC_PORT_NAME = 'grpc'
HTTP_PORT_NAME = 'http'
_MODELS_VOLUME = 'models'
_CONFIG_VOLUME = 'config'
# TF Serving opens its ports only once every listed model has a version
# loaded; the startup probe gives it this long (10 s periods) before the
# liveness probe, which would otherwise restart it while loading, takes over.
_STARTUP_PROBE_FAILURES = 60


class _BlockStringDumper(yaml.SafeDumper):
  """SafeDumper that writes multi-line strings (the config files) as literal
  blocks, so the ConfigMap reads like the files themselves, and repeats
  the shared label maps instead of writing YAML anchors and aliases."""

  def ignore_aliases(self, data: Any) -> bool:
    return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
  style = '|' if '\n' in data else None
  return dumper.represent_scalar('tag:yaml.org,2002:str', data, style=style)


_BlockStringDumper.add_representer(str, _represent_str)


def _name(config: PipelineConfig) -> str:
  return f'{config.pipeline_name}-serving'


def _labels(config: PipelineConfig) -> Dict[str, str]:
  return {
      'app.kubernetes.io/name': _name(config),
      'app.kubernetes.io/component': 'model-server',
      'app.kubernetes.io/part-of': config.pipeline_name,
  }


def _startup_config_digest(batching_config: str,
                           monitoring_config: str) -> str:
  """SHA-256 of the files TF Serving reads only at start.

  Kept in the pod template, so that changing them rolls the pods; a change
  of models.config does not, as the servers poll it.
  """
  digest = hashlib.sha256()
  for text in (batching_config, monitoring_config):
    digest.update(text.encode())
    digest.update(b'\0')
  return digest.hexdigest()


def _container(config: PipelineConfig) -> Dict[str, Any]:
  serving = config.serving
  resources = {'cpu': serving.cpu, 'memory': serving.memory}
  return {
      'name': CONTAINER_NAME,
      'image': serving.image,
      # Replaces the image's entrypoint script, which adds --model_name and
      # --model_base_path flags of its own.
      'command': ['tensorflow_model_server',
                  *model_server_args(config, CONFIG_MOUNT_PATH)],
      'ports': [
          {'name': GRPC_PORT_NAME, 'containerPort': serving.grpc_port,
           'protocol': 'TCP'},
          {'name': HTTP_PORT_NAME, 'containerPort': serving.rest_api_port,
           'protocol': 'TCP'},
      ],
      'volumeMounts': [
          {'name': _MODELS_VOLUME, 'mountPath': serving.models_mount_path,
           'readOnly': True},
          {'name': _CONFIG_VOLUME, 'mountPath': CONFIG_MOUNT_PATH,
           'readOnly': True},
      ],
      # Requests equal to limits: the Guaranteed QoS class, so a loaded
      # model server is the last thing evicted under memory pressure.
      'resources': {'requests': dict(resources), 'limits': dict(resources)},
      'startupProbe': {
          'tcpSocket': {'port': serving.grpc_port},
          'periodSeconds': 10,
          'failureThreshold': _STARTUP_PROBE_FAILURES,
      },
      # The model status URL answers 200 once the model has a version; the
      # production model is the one traffic needs.
      'readinessProbe': {
          'httpGet': {'path': f'/v1/models/{PRODUCTION_MODEL_NAME}',
                      'port': serving.rest_api_port},
          'periodSeconds': 5,
          'failureThreshold': 3,
      },
      'livenessProbe': {
          'tcpSocket': {'port': serving.grpc_port},
          'periodSeconds': 10,
          'failureThreshold': 3,
      },
  }


def render_manifests(config: PipelineConfig, model_config: str,
                     batching_config: str, monitoring_config: str) -> str:
  """The ConfigMap, Deployment and Service, as one multi-document YAML.

  Args:
    config: the pipeline's config (ServingConfig above all).
    model_config: models.config's text (render_model_config, with
      base_path_root = ServingConfig.models_mount_path).
    batching_config: batching.config's text (render_batching_config).
    monitoring_config: monitoring.config's text (render_monitoring_config).

  Returns:
    YAML for `kubectl apply -f`.
  """
  serving = config.serving
  name = _name(config)
  labels = _labels(config)
  config_map = {
      'apiVersion': 'v1',
      'kind': 'ConfigMap',
      'metadata': {'name': f'{name}-config', 'labels': labels},
      'data': {
          MODEL_CONFIG_FILE: model_config,
          BATCHING_CONFIG_FILE: batching_config,
          MONITORING_CONFIG_FILE: monitoring_config,
      },
  }
  deployment = {
      'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': name, 'labels': labels},
      'spec': {
          'replicas': serving.replicas,
          'selector': {'matchLabels': labels},
          # A new pod must be ready before an old one goes: no capacity lost
          # while a rollout loads the models.
          'strategy': {'type': 'RollingUpdate',
                       'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}},
          'template': {
              'metadata': {
                  'labels': labels,
                  'annotations': {
                      'prometheus.io/scrape': 'true',
                      'prometheus.io/port': str(serving.rest_api_port),
                      'prometheus.io/path': PROMETHEUS_PATH,
                      f'{config.pipeline_name}/startup-config-sha256':
                          _startup_config_digest(batching_config,
                                                 monitoring_config),
                  },
              },
              'spec': {
                  'containers': [_container(config)],
                  'volumes': [
                      {'name': _MODELS_VOLUME,
                       'persistentVolumeClaim': {
                           'claimName': serving.models_volume_claim,
                           'readOnly': True}},
                      {'name': _CONFIG_VOLUME,
                       'configMap': {'name': config_map['metadata']['name']}},
                  ],
              },
          },
      },
  }
  service = {
      'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': name, 'labels': labels},
      'spec': {
          'selector': labels,
          'ports': [
              {'name': GRPC_PORT_NAME, 'port': serving.grpc_port,
               'targetPort': GRPC_PORT_NAME, 'protocol': 'TCP'},
              {'name': HTTP_PORT_NAME, 'port': serving.rest_api_port,
               'targetPort': HTTP_PORT_NAME, 'protocol': 'TCP'},
          ],
      },
  }
  return yaml.dump_all([config_map, deployment, service],
                       Dumper=_BlockStringDumper, sort_keys=False)

