"""TF Serving's gRPC API on the serving core, with its generated servicers.

PredictionService (Predict, Classify, GetModelMetadata) and ModelService
(GetModelStatus, HandleReloadConfigRequest) are implemented on the classes
tensorflow-serving-api generates, so the stock
`prediction_service_pb2_grpc.PredictionServiceStub` talks to this server
unchanged. Regress and MultiInference answer UNIMPLEMENTED: the pipeline's
models have no regression signature.
"""

import concurrent.futures
from typing import Callable

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import status_pb2

from finsent.serving.server.core import classification_result
from finsent.serving.server.core import ModelServer
from finsent.serving.server.core import RequestTimer
from finsent.serving.server.errors import ServingError
from finsent.serving.server.model_manager import signature_key

ENTRYPOINT = 'GRPC'


def _serve(server: ModelServer, api: str,
           handle: Callable[[RequestTimer], object], context):
  """Runs `handle`, turning a ServingError into the call's gRPC status and
  recording the request in the metrics either way."""
  timer = RequestTimer(server.metrics, api, ENTRYPOINT)
  try:
    response = handle(timer)
  except ServingError as e:
    timer.done(e.code)
    context.abort(e.code, e.message)
  timer.done(grpc.StatusCode.OK)
  return response


def _ndarray(alias: str, tensor) -> np.ndarray:
  """A request's TensorProto as an array; a malformed one is the client's
  error (TF Serving's "tensor parsing error")."""
  try:
    return tf.make_ndarray(tensor)
  except (ValueError, TypeError) as e:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f'tensor parsing error: {alias} ({e})') from e


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
  """tensorflow.serving.PredictionService."""

  def __init__(self, server: ModelServer):
    self._server = server

  def Predict(self, request, context):
    def handle(timer):
      timer.model_name = request.model_spec.name
      inputs = {alias: _ndarray(alias, tensor)
                for alias, tensor in request.inputs.items()}
      signature_name = signature_key(request.model_spec.signature_name)
      with self._server.acquired(request.model_spec) as loaded:
        timer.version = str(loaded.version)
        future = self._server.run(loaded, signature_name, inputs,
                                  list(request.output_filter))
      outputs = future.result()
      response = predict_pb2.PredictResponse()
      response.model_spec.name = loaded.name
      response.model_spec.version.value = loaded.version
      response.model_spec.signature_name = signature_name
      for alias, value in outputs.items():
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
      return response
    return _serve(self._server, 'Predict', handle, context)

  def Classify(self, request, context):
    def handle(timer):
      timer.model_name = request.model_spec.name
      signature_name = signature_key(request.model_spec.signature_name)
      with self._server.acquired(request.model_spec) as loaded:
        timer.version = str(loaded.version)
        future = self._server.run(
            loaded, signature_name,
            self._server.classify_inputs(loaded, signature_name,
                                         request.input))
      outputs = future.result()
      response = classification_pb2.ClassificationResponse()
      response.model_spec.name = loaded.name
      response.model_spec.version.value = loaded.version
      response.model_spec.signature_name = signature_name
      response.result.CopyFrom(classification_result(outputs))
      return response
    return _serve(self._server, 'Classify', handle, context)

  def GetModelMetadata(self, request, context):
    def handle(timer):
      timer.model_name = request.model_spec.name
      return self._server.metadata(request.model_spec,
                                   list(request.metadata_field))
    return _serve(self._server, 'GetModelMetadata', handle, context)

  def Regress(self, request, context):
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  'Regress is not served: the models have no regression '
                  'signature')

  def MultiInference(self, request, context):
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  'MultiInference is not served')


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
  """tensorflow.serving.ModelService."""

  def __init__(self, server: ModelServer):
    self._server = server

  def GetModelStatus(self, request, context):
    def handle(timer):
      timer.model_name = request.model_spec.name
      return self._server.status(request.model_spec)
    return _serve(self._server, 'GetModelStatus', handle, context)

  def HandleReloadConfigRequest(self, request, context):
    def handle(timer):
      self._server.manager.reload_config(request.config)
      self._server.manager.poll_once()
      return model_management_pb2.ReloadConfigResponse(
          status=status_pb2.StatusProto(error_code=0))
    return _serve(self._server, 'HandleReloadConfigRequest', handle, context)


def start_grpc_server(server: ModelServer, address: str,
                      max_workers: int = 64) -> grpc.Server:
  """Starts both services on `address` (host:port); returns the server."""
  grpc_server = grpc.server(
      concurrent.futures.ThreadPoolExecutor(max_workers,
                                            thread_name_prefix='grpc'))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionService(server), grpc_server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(
      ModelService(server), grpc_server)
  if grpc_server.add_insecure_port(address) == 0:
    raise OSError(f'cannot bind the gRPC port at {address}')
  grpc_server.start()
  return grpc_server
