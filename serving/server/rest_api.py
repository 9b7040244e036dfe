"""TF Serving's REST API on the serving core, served by Tornado.

  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
  GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signatures
  POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    (and :classify)
  GET  <monitoring path>                                      Prometheus

Bodies are converted by rest_json, to TF Serving's formats; every
error is `{"error": "..."}` with TF Serving's HTTP status. Request bodies
are streamed and refused with 413 past `max_body_bytes`, without holding
them in memory.
"""

import asyncio
import functools
import re
from typing import Optional

import grpc
import tornado.httpserver
import tornado.web
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import model_pb2

from finsent.serving.server.core import classification_result
from finsent.serving.server.core import ModelServer
from finsent.serving.server.core import RequestTimer
from finsent.serving.server.errors import RestRequestError
from finsent.serving.server.errors import ServingError
from finsent.serving.server.model_manager import LoadedVersion
from finsent.serving.server.model_manager import signature_key
from finsent.serving.server.rest_json import predict_classify
from finsent.serving.server.rest_json import proto_printer
from finsent.serving.server.rest_json.rapidjson_writer import error_json

ENTRYPOINT = 'REST'
# TF Serving's URL grammar (model_servers/http_rest_api_handler.cc).
_MODEL_URL = (r'/v1/models/(?P<name>[^/:]+)'
              r'(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?')
_METHOD_URL = re.compile(_MODEL_URL + r':(?P<method>classify|regress|predict)')
_STATUS_URL = re.compile(_MODEL_URL + r'(?P<metadata>/metadata)?')
_JSON = 'application/json'


def _model_spec(match: re.Match) -> model_pb2.ModelSpec:
  spec = model_pb2.ModelSpec(name=match['name'])
  if match['version'] is not None:
    spec.version.value = int(match['version'])
  elif match['label'] is not None:
    spec.version_label = match['label']
  return spec


def _predict_signature(loaded: LoadedVersion, signature_name: str
                       ) -> meta_graph_pb2.SignatureDef:
  """A signature for REST predict, refused with REST's own message."""
  name = signature_key(signature_name)
  if name not in loaded.signature_defs:
    raise RestRequestError(
        f'Serving signature name: "{name}" not found in signature def')
  return loaded.signature_defs[name]


@tornado.web.stream_request_body
class ModelsHandler(tornado.web.RequestHandler):
  """Every /v1/ URL: status and metadata on GET, inference on POST."""

  def initialize(self, server: ModelServer, max_body_bytes: int):
    self._server = server
    self._max_body_bytes = max_body_bytes

  def prepare(self):
    self._chunks = []
    self._size = 0
    length = self.request.headers.get('Content-Length', '')
    self._too_large = length.isdigit() and int(length) > self._max_body_bytes

  def data_received(self, chunk: bytes):
    # Past the limit the body is counted and dropped, never held in memory,
    # and answered 413 once read.
    self._size += len(chunk)
    if self._too_large or self._size > self._max_body_bytes:
      self._too_large = True
      self._chunks = []
    else:
      self._chunks.append(chunk)

  def write_error(self, status_code: int, **kwargs) -> None:
    # A failure nothing above caught is still answered as {"error": ...}.
    self.set_header('Content-Type', _JSON)
    self.finish(error_json(
        f'Internal error: {self._reason} ({status_code})'))

  def _reply(self, status: int, body: bytes) -> None:
    self.set_status(status)
    self.set_header('Content-Type', _JSON)
    self.finish(body)

  def _fail(self, timer: Optional[RequestTimer], error: ServingError) -> None:
    if timer is not None:
      timer.done(error.code)
    self._reply(error.http_status, error_json(error.message))

  async def get(self):
    match = _STATUS_URL.fullmatch(self.request.path)
    if match is None:
      self._malformed()
      return
    api = 'GetModelMetadata' if match['metadata'] else 'GetModelStatus'
    timer = RequestTimer(self._server.metrics, api, ENTRYPOINT)
    timer.model_name = match['name']
    try:
      spec = _model_spec(match)
      if match['metadata']:
        body = proto_printer.metadata_json(self._server.metadata(
            spec, ['signature_def']))
      else:
        body = proto_printer.status_json(self._server.status(spec))
    except ServingError as e:
      self._fail(timer, e)
      return
    timer.done(grpc.StatusCode.OK)
    self._reply(200, body)

  async def post(self):
    match = _METHOD_URL.fullmatch(self.request.path)
    if match is None:
      self._malformed()
      return
    method = match['method']
    timer = RequestTimer(self._server.metrics, method, ENTRYPOINT)
    timer.model_name = match['name']
    if self._too_large:
      timer.done(grpc.StatusCode.RESOURCE_EXHAUSTED)
      self._reply(413, error_json(
          f'Request body exceeds the limit of {self._max_body_bytes} bytes'))
      return
    body = b''.join(self._chunks)
    try:
      if method == 'regress':
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           'Regress is not served: the models have no '
                           'regression signature')
      spec = _model_spec(match)
      with self._server.acquired(spec) as loaded:
        timer.version = str(loaded.version)
        if method == 'predict':
          request = predict_classify.parse_predict_request(
              body, functools.partial(_predict_signature, loaded))
          future = self._server.run(
              loaded, signature_key(request.signature_name), request.inputs)
        else:
          signature_name, request_input = (
              predict_classify.parse_classify_request(body))
          signature_name = signature_key(signature_name)
          future = self._server.run(
              loaded, signature_name, self._server.classify_inputs(
                  loaded, signature_name, request_input))
      outputs = await asyncio.wrap_future(future)
      if method == 'predict':
        response = predict_classify.format_predict_response(
            outputs, request.row_format)
      else:
        response = predict_classify.format_classify_response(
            classification_result(outputs))
    except ServingError as e:
      self._fail(timer, e)
      return
    timer.done(grpc.StatusCode.OK)
    self._reply(200, response)

  def _malformed(self) -> None:
    self._fail(None, ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'Malformed request: {self.request.method} {self.request.path}'))


class MetricsHandler(tornado.web.RequestHandler):
  """The Prometheus scrape endpoint."""

  def initialize(self, server: ModelServer):
    self._server = server

  def get(self):
    self.set_header('Content-Type', 'text/plain; version=0.0.4')
    self.finish(self._server.metrics.exposition())


def rest_application(server: ModelServer, max_body_bytes: int,
                     monitoring_path: Optional[str]) -> tornado.web.Application:
  handlers = []
  if monitoring_path:
    handlers.append((re.escape(monitoring_path), MetricsHandler,
                     {'server': server}))
  handlers.append((r'/.*', ModelsHandler,
                   {'server': server, 'max_body_bytes': max_body_bytes}))
  return tornado.web.Application(handlers)


def start_rest_server(server: ModelServer, address: str, port: int,
                      max_body_bytes: int, monitoring_path: Optional[str]
                      ) -> tornado.httpserver.HTTPServer:
  """Listens on address:port in the running asyncio loop."""
  http_server = tornado.httpserver.HTTPServer(
      rest_application(server, max_body_bytes, monitoring_path),
      # Tornado's own cap is set above ours, so that ours answers 413.
      max_body_size=2 ** 40)
  http_server.listen(port, address=address)
  return http_server
