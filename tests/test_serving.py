"""`finsent serve` against TF Serving's REST and gRPC contract.

A real exported model (the `exported_model` fixture: Transform on Beam, a
trained Keras model, the pipeline's export) is pushed with the Pusher's own
`publish_model` and served by the server in a subprocess on 127.0.0.1;
clients are plain HTTP and the stock tensorflow-serving-api gRPC stubs.
"""

import base64
import json
import os
import shutil
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from finsent.components.atomic_pusher import publish_model
from finsent.configs import features
from finsent.models import export
from finsent.serving.client import SentimentClient
from finsent.serving.server.process import free_ports
from finsent.serving.server.process import ModelServerProcess
from tests.conftest import break_serving_signature
from tests.conftest import HEADLINES
from tests.conftest import TOPIC_HEADLINES

TEXTS = [text for text, _ in HEADLINES]
LABELS = [label for _, label in HEADLINES]


def _example(text: str) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      'text': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[text.encode()]))})).SerializeToString()


@pytest.fixture(scope='module')
def served(exported_model, tmp_path_factory):
  """A server on one pushed version of `sentiment`, batching and metrics on."""
  export_dir, _, _ = exported_model
  root = tmp_path_factory.mktemp('serving')
  version_dir = publish_model(export_dir, str(root / 'sentiment'))
  (root / 'models.config').write_text(f'''
model_config_list {{
  config {{
    name: "sentiment"
    base_path: "{root / 'sentiment'}"
    model_platform: "tensorflow"
    version_labels {{ key: "stable" value: {os.path.basename(version_dir)} }}
  }}
}}
''')
  (root / 'batching.config').write_text(
      'max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\n'
      'num_batch_threads { value: 2 }\n')
  (root / 'monitoring.config').write_text(
      'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')
  with ModelServerProcess(
      f'--model_config_file={root / "models.config"}',
      '--allow_version_labels_for_unavailable_models', '--enable_batching',
      f'--batching_parameters_file={root / "batching.config"}',
      f'--monitoring_config_file={root / "monitoring.config"}') as server:
    server.version = int(os.path.basename(version_dir))
    yield server


def _post(server, path, body):
  data = body if isinstance(body, (bytes, str)) else json.dumps(body)
  return requests.post(server.url(path), data=data, timeout=30)


# --- REST: request/response pairs of TF Serving's REST API documentation ---

def test_model_status(served):
  response = requests.get(served.url('/v1/models/sentiment'), timeout=10)
  assert response.status_code == 200
  assert response.json() == {'model_version_status': [{
      'version': str(served.version), 'state': 'AVAILABLE',
      'status': {'error_code': 'OK', 'error_message': ''}}]}
  for path in (f'/v1/models/sentiment/versions/{served.version}',
               '/v1/models/sentiment/labels/stable'):
    assert requests.get(served.url(path), timeout=10).json() == response.json()


def test_model_metadata_lists_the_signatures(served):
  body = requests.get(served.url('/v1/models/sentiment/metadata'),
                      timeout=10).json()
  assert body['model_spec'] == {'name': 'sentiment', 'signature_name': '',
                                'version': str(served.version)}
  signatures = body['metadata']['signature_def']['signature_def']
  assert {export.SERVING_SIGNATURE, export.EXAMPLES_SIGNATURE,
          export.CLASSIFICATION_SIGNATURE} <= set(signatures)
  serving = signatures[export.SERVING_SIGNATURE]
  assert serving['method_name'] == 'tensorflow/serving/predict'
  assert serving['inputs']['text']['dtype'] == 'DT_STRING'
  assert set(serving['outputs']) == {'label', 'probabilities'}
  assert signatures[export.CLASSIFICATION_SIGNATURE]['method_name'] == (
      'tensorflow/serving/classify')


def test_predict_row_format(served):
  response = _post(served, '/v1/models/sentiment:predict',
                   {'instances': TEXTS})
  assert response.status_code == 200, response.text
  predictions = response.json()['predictions']
  assert [p['label'] for p in predictions] == LABELS
  for p in predictions:
    assert sum(p['probabilities']) == pytest.approx(1, abs=1e-5)


def test_predict_row_format_named_and_b64_instances(served):
  plain = _post(served, '/v1/models/sentiment:predict',
                {'instances': TEXTS}).json()
  named = _post(served, '/v1/models/sentiment:predict',
                {'instances': [{'text': t} for t in TEXTS]}).json()
  encoded = _post(served, '/v1/models/sentiment:predict', {'instances': [
      {'text': {'b64': base64.b64encode(t.encode()).decode()}}
      for t in TEXTS]}).json()
  assert named == plain and encoded == plain


def test_predict_columnar_format(served):
  response = _post(served, '/v1/models/sentiment:predict',
                   {'inputs': {'text': TEXTS}})
  outputs = response.json()['outputs']
  assert outputs['label'] == LABELS
  assert len(outputs['probabilities']) == len(TEXTS)


def test_predict_on_examples_with_signature_name(served):
  by_text = _post(served, '/v1/models/sentiment:predict',
                  {'instances': TEXTS}).json()['predictions']
  response = _post(served, '/v1/models/sentiment/labels/stable:predict', {
      'signature_name': export.EXAMPLES_SIGNATURE,
      'instances': [{'b64': base64.b64encode(_example(t)).decode()}
                    for t in TEXTS]})
  assert response.status_code == 200, response.text
  assert response.json()['predictions'] == by_text


def test_classify(served):
  response = _post(served, '/v1/models/sentiment:classify', {
      'signature_name': export.CLASSIFICATION_SIGNATURE,
      'examples': [{'text': t} for t in TEXTS]})
  assert response.status_code == 200, response.text
  results = response.json()['results']
  assert len(results) == len(TEXTS)
  for row, label in zip(results, LABELS):
    assert [name for name, _ in row] == ['negative', 'neutral', 'positive']
    assert max(row, key=lambda pair: pair[1])[0] == label


@pytest.mark.parametrize('method, path, body, status, message', [
    ('GET', '/v1/models/nope', None, 404, 'Servable not found for request'),
    ('POST', '/v1/models/nope:predict', {'instances': ['x']}, 404,
     'Servable not found for request: Latest(nope)'),
    ('POST', '/v1/models/sentiment/versions/7:predict', {'instances': ['x']},
     404, 'Servable not found for request: Specific(sentiment, 7)'),
    ('GET', '/v1/models/sentiment/versions/7', None, 404,
     'Could not find version 7 of model sentiment'),
    ('POST', '/v1/models/sentiment/labels/nope:predict', {'instances': ['x']},
     400, 'Unrecognized servable version label: nope'),
    ('POST', '/v1/models/sentiment:predict', '{"instances": [', 400, ''),
    ('POST', '/v1/models/sentiment:predict', {'instances': ['x'],
                                              'inputs': ['x']}, 400, ''),
    ('POST', '/v1/models/sentiment:predict', {'signature_name': 'nope',
                                              'instances': ['x']}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ('POST', '/v1/models/sentiment:classify', {'examples': [{'text': 'x'}]},
     400, 'No classification inputs found in SignatureDef'),
    ('POST', '/v1/models/sentiment:regress', {'examples': [{'text': 'x'}]},
     501, 'Regress'),
])
def test_rest_errors(served, method, path, body, status, message):
  if method == 'GET':
    response = requests.get(served.url(path), timeout=10)
  else:
    response = _post(served, path, body)
  assert response.status_code == status, response.text
  assert message in response.json()['error']


def test_body_over_the_limit_is_refused_with_413(served):
  response = _post(served, '/v1/models/sentiment:predict',
                   b'{"instances": ["' + b'x' * (17 * 2 ** 20) + b'"]}')
  assert response.status_code == 413
  assert 'limit' in response.json()['error']


def test_prometheus_metrics(served):
  _post(served, '/v1/models/sentiment:predict', {'instances': TEXTS})
  text = requests.get(served.url('/monitoring/prometheus/metrics'),
                      timeout=10).text
  assert (':tensorflow:serving:request_count_total{API="predict",'
          'entrypoint="REST",'
          f'model_name="sentiment",model_version="{served.version}",'
          'status="OK"}') in text
  assert ':tensorflow:serving:request_latency_bucket' in text
  assert ':tensorflow:serving:batching_session:processed_batch_size' in text
  assert (':tensorflow:serving:model_load_count_total{model_name="sentiment",'
          f'model_version="{served.version}",outcome="ok"}} 1.0') in text


# --- gRPC with the stock generated stubs ---

def test_grpc_predict_metadata_status_and_classify(served):
  channel = grpc.insecure_channel(served.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = 'sentiment'
  request.inputs['text'].CopyFrom(tf.make_tensor_proto(TEXTS))
  response = stub.Predict(request, timeout=30)
  assert response.model_spec.version.value == served.version
  assert response.model_spec.signature_name == 'serving_default'
  assert [v.decode() for v in
          tf.make_ndarray(response.outputs['label'])] == LABELS
  assert tf.make_ndarray(response.outputs['probabilities']).shape == (
      len(TEXTS), 3)

  metadata = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
      model_spec={'name': 'sentiment'}, metadata_field=['signature_def']),
      timeout=30)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  metadata.metadata['signature_def'].Unpack(signatures)
  assert export.SERVING_SIGNATURE in signatures.signature_def

  classification = stub.Classify(classification_pb2.ClassificationRequest(
      model_spec={'name': 'sentiment',
                  'signature_name': export.CLASSIFICATION_SIGNATURE},
      input={'example_list': {'examples': [
          tf.train.Example.FromString(_example(t)) for t in TEXTS]}}),
      timeout=30)
  assert [max(c.classes, key=lambda c: c.score).label
          for c in classification.result.classifications] == LABELS

  status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
      get_model_status_pb2.GetModelStatusRequest(
          model_spec={'name': 'sentiment', 'version_label': 'stable'}),
      timeout=30)
  assert [(s.version, s.state) for s in status.model_version_status] == [
      (served.version, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


@pytest.mark.parametrize('spec, inputs, code', [
    ({'name': 'nope'}, {'text': ['x']}, grpc.StatusCode.NOT_FOUND),
    ({'name': 'sentiment', 'version': {'value': 9}}, {'text': ['x']},
     grpc.StatusCode.NOT_FOUND),
    ({'name': 'sentiment'}, {'headline': ['x']},
     grpc.StatusCode.INVALID_ARGUMENT),
    ({'name': 'sentiment'}, {'text': [1.5]}, grpc.StatusCode.INVALID_ARGUMENT),
    ({'name': 'sentiment', 'signature_name': 'nope'}, {'text': ['x']},
     grpc.StatusCode.FAILED_PRECONDITION),
])
def test_grpc_errors(served, spec, inputs, code):
  stub = prediction_service_pb2_grpc.PredictionServiceStub(
      grpc.insecure_channel(served.grpc_target))
  request = predict_pb2.PredictRequest(model_spec=spec)
  for alias, values in inputs.items():
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(values))
  with pytest.raises(grpc.RpcError) as error:
    stub.Predict(request, timeout=30)
  assert error.value.code() == code


# --- the client, both protocols ---

@pytest.mark.parametrize('protocol', ['rest', 'grpc'])
def test_client_batches_long_inputs(served, protocol):
  target = (served.grpc_target if protocol == 'grpc'
            else f'127.0.0.1:{served.rest_port}')
  with SentimentClient(target, protocol=protocol,
                       max_batch_size=4) as client:
    predictions = client.predict(TEXTS * 3)
  assert [p.label for p in predictions] == LABELS * 3
  assert [p.text for p in predictions] == TEXTS * 3
  for p in predictions:
    assert list(p.probabilities) == ['negative', 'neutral', 'positive']
    assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)
  if protocol == 'grpc':
    assert {p.version for p in predictions} == {served.version}


def test_client_retries_then_reports_an_unreachable_server():
  client = SentimentClient('127.0.0.1:9', retries=2, backoff_seconds=0.01,
                           timeout_seconds=1)
  with pytest.raises(Exception, match='gave up after 3 attempts'):
    client.predict(['x'])


def test_cli_predict(served, capsys):
  from finsent.commands import cli
  assert cli.main(['predict', '--server', f'127.0.0.1:{served.rest_port}',
                   '--json', TEXTS[0]]) == 0
  row = json.loads(capsys.readouterr().out)
  assert row['text'] == TEXTS[0] and row['label'] == LABELS[0]
  # A sentiment-only model has no topic fields.
  assert sorted(row) == ['label', 'probabilities', 'text', 'version']


def test_a_topic_head_served_through_rest_grpc_and_finsent_predict(
    exported_topic_model, tmp_path, capsys):
  """The topic and its probabilities pass through the TF Serving contract
  to the client and `finsent predict`, beside the sentiment."""
  from finsent.commands import cli
  export_dir, _, _ = exported_topic_model
  publish_model(export_dir, str(tmp_path / 'sentiment'))
  texts = [text for text, _ in TOPIC_HEADLINES]
  topics = [topic for _, topic in TOPIC_HEADLINES]
  with ModelServerProcess('--model_name=sentiment',
                          f'--model_base_path={tmp_path / "sentiment"}'
                          ) as server:
    for protocol, port in (('rest', server.rest_port),
                           ('grpc', server.grpc_port)):
      with SentimentClient(f'127.0.0.1:{port}', protocol=protocol) as client:
        predictions = client.predict(texts + TEXTS)
      assert [p.topic for p in predictions[:len(texts)]] == topics, protocol
      assert [p.label for p in predictions[len(texts):]] == LABELS, protocol
      for p in predictions:
        assert list(p.topic_probabilities) == list(features.TOPICS)
        assert sum(p.topic_probabilities.values()) == pytest.approx(
            1, abs=1e-5)
        assert max(p.topic_probabilities,
                   key=p.topic_probabilities.get) == p.topic
    assert cli.main(['predict', '--server', f'127.0.0.1:{server.rest_port}',
                     '--json', texts[0]]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row['topic'] == topics[0] and len(row['topic_probabilities']) == 20
    assert cli.main(['predict', '--server', f'127.0.0.1:{server.rest_port}',
                     texts[0]]) == 0
    table = capsys.readouterr().out
    assert topics[0] in table and texts[0] in table


# --- versions: pushed, warmed, swapped; broken ones never take traffic ---

def _wait_for_status(server, model, condition, timeout_seconds=90):
  """Polls the model status until `condition({version: status})` holds."""
  deadline = time.monotonic() + timeout_seconds
  while True:
    versions = {int(s['version']): s for s in requests.get(
        server.url(f'/v1/models/{model}'), timeout=10
    ).json()['model_version_status']}
    if condition(versions):
      return versions
    assert time.monotonic() < deadline, versions
    time.sleep(0.2)


def test_labels_on_versions_not_loaded_are_refused_at_start(
    exported_model, tmp_path):
  """As in TF Serving: without the flag, a label in models.config stops the
  server from starting (labels are assigned before anything loads)."""
  from finsent.commands import serve as serve_command
  from finsent.serving.server import assembly
  config = tmp_path / 'models.config'
  config.write_text(f'model_config_list {{ config {{ name: "sentiment" '
                    f'base_path: "{tmp_path}" model_platform: "tensorflow" '
                    f'version_labels {{ key: "stable" value: 1 }} }} }}')
  args = serve_command.build_parser().parse_args(
      [f'--model_config_file={config}'])
  with pytest.raises(Exception, match='Request to assign label to version 1 '
                     'of model sentiment, which is not currently available'):
    assembly.serve(assembly.ServerOptions(**vars(args)))


def test_broken_version_is_reported_and_never_takes_traffic(
    exported_model, tmp_path):
  export_dir, _, _ = exported_model
  base = tmp_path / 'sentiment'
  good = int(os.path.basename(publish_model(export_dir, str(base))))
  broken_copy = tmp_path / 'broken'
  shutil.copytree(export_dir, broken_copy)
  break_serving_signature(str(broken_copy))
  with ModelServerProcess(f'--model_base_path={base}', '--model_name=sentiment',
                          '--file_system_poll_wait_seconds=1') as server:
    bad = int(os.path.basename(publish_model(str(broken_copy), str(base))))
    by_version = _wait_for_status(server, 'sentiment', lambda versions: (
        versions.get(bad, {}).get('state') == 'END'))
    assert by_version[bad]['state'] == 'END'
    assert 'serving_examples_examples' in by_version[bad]['status'][
        'error_message']
    assert by_version[good]['state'] == 'AVAILABLE'
    response = _post(server, '/v1/models/sentiment:predict',
                     {'instances': TEXTS})
    assert response.status_code == 200
    assert _post(server, f'/v1/models/sentiment/versions/{bad}:predict',
                 {'instances': TEXTS}).status_code == 404


# --- fuzz: malformed requests get a 4xx JSON error; the server serves on ---

def _malformed_requests():
  """(method, path, body, headers) of requests TF Serving refuses with 4xx."""
  predict = '/v1/models/sentiment:predict'
  bad_json = ['', ' ', '{', '[', '}', 'null', '"text"', '42', 'true',
              '{"instances": [}', '{"instances": ["a",]}', '{"instances": ["a"]',
              "{'instances': ['a']}", '{"instances": [NaN}', b'\xff\xfe\x00',
              '{"instances": ["a"]} trailing', '{"instances" ["a"]}',
              '{"instances": [\'a\']}', '{instances: ["a"]}', '\x00']
  bad_values = [
      {}, {'instances': []}, {'instances': 'abc'}, {'instances': None},
      {'instances': {}}, {'instances': [1]}, {'instances': [1.5]},
      {'instances': [True]}, {'instances': [None]}, {'instances': [[1, 2]]},
      {'instances': [{'text': 5}]}, {'instances': [{'text': None}]},
      {'instances': [{'text': 'a'}, 'b']}, {'instances': ['a', {'text': 'b'}]},
      {'instances': [{'text': 'a', 'extra': 'b'}]}, {'instances': [{}]},
      {'instances': [{'headline': 'a'}]}, {'instances': [['a'], 'b']},
      {'instances': ['a'], 'inputs': {'text': ['a']}}, {'inputs': 5},
      {'inputs': {'headline': ['a']}}, {'inputs': {'text': [1, 2]}},
      {'inputs': {'text': 'a', 'extra': 'b'}}, {'inputs': None},
      {'inputs': {'text': [['a'], 'b']}}, {'signature_name': 5,
                                           'instances': ['a']},
      {'signature_name': None, 'instances': ['a']},
      {'instances': [{'b64': 5}]}, {'instances': [{'b64': '!!!'}]},
      {'instances': [{'b64': ['YQ==']}]},
      {'instances': [{'text': {'b64': '%%%'}}]},
      {'instances': [{'text': {'b64': 'YQ==', 'x': 1}}]},
      {'inputs': {'text': [{'b64': '?'}]}},
  ]
  bad_values += [{'signature_name': name, 'instances': ['a']} for name in (
      'nope', 'Serving_Default', 'serving_default ', '../serving_default',
      '__saved_model_init_op', 'transform_features', 'classification',
      'serving_default\x00')]
  bad_values += [
      {'instances': ['a'] * 33},  # over the batching file's max_batch_size
      {'inputs': {'text': ['a'] * 40}},
      {'instances': [[[[[[[[[['a']]]]]]]]]]},
      {'instances': [1e300]}, {'instances': [{'text': ['a', 'b']}]},
      {'inputs': {'text': [[]]}}, {'inputs': 'a'}, {'inputs': [['a']]},
  ]
  bad_json += ['<predict><text>a</text></predict>', 'instances=a',
               '[' * 5000 + ']' * 5000]
  cases = [('POST', predict, body, {}) for body in bad_json]
  cases += [('POST', predict, json.dumps(body), {}) for body in bad_values]
  for path in ('/v1/models/nope:predict', '/v1/models/../sentiment:predict',
               '/v1/models/sentiment/versions/1:predict',
               '/v1/models/sentiment/versions/99999999999999:predict',
               '/v1/models/sentiment/labels/canary:predict',
               '/v1/models/sentiment/labels/..:predict',
               '/v1/models/sentiment:explode', '/v1/models/:predict',
               '/v1/models/sentiment/versions/abc:predict', '/v1/models',
               '/v1/models/sentiment/metadata:predict', '/v2/models/x',
               '/v1/models/%2e%2e%2fetc:predict', '/etc/passwd',
               '/v1/models/sentiment:predict/extra'):
    cases.append(('POST', path, '{"instances": ["a"]}', {}))
  for path in ('/v1/models/nope', '/v1/models/sentiment/versions/3',
               '/v1/models/nope/metadata', '/v1/models/sentiment:predict',
               '/v1/models/sentiment/labels/nope/metadata', '/v1/x'):
    cases.append(('GET', path, None, {}))
  classify = '/v1/models/sentiment:classify'
  for body in ({}, {'examples': []}, {'examples': 'x'}, {'examples': [5]},
               {'examples': [{'text': {'nested': 1}}]},
               {'signature_name': 'nope', 'examples': [{'text': 'a'}]},
               {'signature_name': 'classification', 'examples': [{}],
                'context': 5},
               {'examples': [{'text': 'a'}]}):
    cases.append(('POST', classify, json.dumps(body), {}))
  huge = b'{"instances": ["' + b'x' * (17 * 2 ** 20) + b'"]}'
  cases.append(('POST', predict, huge, {}))
  cases.append(('POST', predict, iter([huge[:2 ** 24], huge[2 ** 24:]]), {}))
  cases.append(('PUT', predict, '{"instances": ["a"]}', {}))
  cases.append(('DELETE', '/v1/models/sentiment', None, {}))
  return cases


def test_fuzz_malformed_requests_get_4xx_json_errors(served):
  cases = _malformed_requests()
  assert len(cases) >= 100
  session = requests.Session()
  for method, path, body, headers in cases:
    response = session.request(method, served.url(path), data=body,
                                headers=headers, timeout=60)
    assert 400 <= response.status_code < 500, (method, path, body,
                                               response.status_code)
    assert isinstance(response.json()['error'], str), (method, path)
  assert served.process.poll() is None
  ok = _post(served, '/v1/models/sentiment:predict', {'instances': TEXTS})
  assert ok.status_code == 200 and [
      p['label'] for p in ok.json()['predictions']] == LABELS


# --- load: 20,000 requests from 32 clients while two versions are pushed ---

def _load_client(kind, target, minimum_requests, stop, results, errors):
  """Sends batch-1 predictions, at least `minimum_requests` and until `stop`
  is set; records (start, end, version) per answer."""
  text = TEXTS[0]
  if kind == 'grpc':
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'sentiment'
    request.inputs['text'].CopyFrom(tf.make_tensor_proto([text]))
  else:
    session = requests.Session()
    body = json.dumps({'instances': [text]})
  sent = 0
  while sent < minimum_requests or not stop.is_set():
    sent += 1
    started = time.monotonic()
    try:
      if kind == 'grpc':
        version = stub.Predict(request, timeout=60).model_spec.version.value
      else:
        response = session.post(target, data=body, timeout=60)
        response.raise_for_status()
        version = None
    except Exception as e:  # pylint: disable=broad-except
      errors.append(repr(e))
      continue
    results.append((started, time.monotonic(), version))


def test_load_while_two_versions_are_pushed(exported_model, tmp_path):
  import threading
  export_dir, _, _ = exported_model
  base = str(tmp_path / 'sentiment')
  first = int(os.path.basename(publish_model(export_dir, base)))
  (tmp_path / 'batching.config').write_text(
      'max_batch_size { value: 32 }\nbatch_timeout_micros { value: 500 }\n'
      'num_batch_threads { value: 2 }\n')
  clients, per_client = 32, 300
  with ModelServerProcess(
      f'--model_base_path={base}', '--model_name=sentiment',
      '--enable_batching',
      f'--batching_parameters_file={tmp_path / "batching.config"}') as server:
    results, errors, stop = [], [], threading.Event()
    threads = [threading.Thread(target=_load_client, args=(
        'grpc' if i % 2 else 'rest',
        server.grpc_target if i % 2 else server.url(
            '/v1/models/sentiment:predict'),
        per_client, stop, results, errors)) for i in range(clients)]
    for thread in threads:
      thread.start()
    pushed = {}
    for share in (0.25, 0.6):
      while len(results) + len(errors) < share * clients * per_client:
        time.sleep(0.05)
      pushed_at = time.monotonic()
      version = int(os.path.basename(publish_model(export_dir, base)))
      pushed[version] = pushed_at
      _wait_for_status(server, 'sentiment', lambda versions, v=version: (
          versions.get(v, {}).get('state') == 'AVAILABLE'))
    # The load goes on until the last version has taken some of it, however
    # long its load took on a busy machine.
    answered_before = len(results) + len(errors)
    deadline = time.monotonic() + 120
    while len(results) + len(errors) < answered_before + 4 * clients:
      assert time.monotonic() < deadline, 'the load stalled'
      time.sleep(0.05)
    stop.set()
    for thread in threads:
      thread.join()
    final = _wait_for_status(server, 'sentiment', lambda versions: all(
        versions.get(v, {}).get('state') == 'END'
        for v in [first, *pushed][:-1]))
  assert not errors, errors[:5]
  assert len(results) >= clients * per_client
  last = max(pushed)
  assert final[last]['state'] == 'AVAILABLE'
  answered = [r for r in results if r[2] is not None]
  assert {v for _, _, v in answered} == {first, *pushed}
  # No version answered a request that ended before it was pushed.
  for _, ended, version in answered:
    assert ended >= pushed.get(version, 0)
  # Versions only move forward: a request started after another's answer
  # came back is answered by that version or a newer one.
  by_end = sorted(answered, key=lambda r: r[1])
  newest_seen, i = 0, 0
  for started, _, version in sorted(answered):
    while i < len(by_end) and by_end[i][1] < started:
      newest_seen = max(newest_seen, by_end[i][2])
      i += 1
    assert version >= newest_seen


def test_grpc_malformed_tensor_is_invalid_argument(served):
  from tensorflow.core.framework import tensor_pb2
  stub = prediction_service_pb2_grpc.PredictionServiceStub(
      grpc.insecure_channel(served.grpc_target))
  request = predict_pb2.PredictRequest(model_spec={'name': 'sentiment'})
  # Claims 4 floats, carries 3 bytes.
  request.inputs['text'].CopyFrom(tensor_pb2.TensorProto(
      dtype=tf.float32.as_datatype_enum,
      tensor_shape={'dim': [{'size': 4}]}, tensor_content=b'abc'))
  with pytest.raises(grpc.RpcError) as error:
    stub.Predict(request, timeout=30)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert 'tensor parsing error: text' in error.value.details()


def test_free_ports_are_distinct():
  # One after another the kernel may return the same free port twice; the
  # server's gRPC and REST ports must differ.
  for _ in range(200):
    grpc_port, rest_port = free_ports(2)
    assert grpc_port != rest_port


@pytest.mark.parametrize('flag,message', [
    ('--port=-1', 'argument --port: must be at least 0, got -1'),
    ('--file_system_poll_wait_seconds=soon',
     "argument --file_system_poll_wait_seconds: expected a whole number, "
     "got 'soon'"),
])
def test_bad_numeric_flags_exit_2(flag, message, capsys):
  from finsent.commands import serve as serve_command
  with pytest.raises(SystemExit) as exited:
    serve_command.build_parser().parse_args([flag])
  assert exited.value.code == 2
  assert message in capsys.readouterr().err
