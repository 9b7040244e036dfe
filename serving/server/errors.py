"""The model server's errors, with TF Serving's status codes.

Every failure a client can see is a ServingError carrying a canonical gRPC
status code; the gRPC API returns it as is and the REST API maps it to TF
Serving's HTTP status (`http_status`). RestRequestError is the REST API's
refusal of a body, worded as TF Serving words it.
"""

import grpc

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc): codes not
# listed here (UNKNOWN, INTERNAL, DATA_LOSS) are answered 500.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ServingError(Exception):
  """A request or load that failed with a canonical status code."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  @property
  def http_status(self) -> int:
    return _HTTP_STATUS.get(self.code, 500)


class RestRequestError(ServingError):
  """A request TF Serving would reject; the message is TF Serving's.

  Almost every case is INVALID_ARGUMENT (HTTP 400); `code` is another
  canonical code where TF Serving uses one, e.g. UNIMPLEMENTED (501) for a
  columnar value fed to an input dtype JSON cannot express.
  """

  def __init__(self, message: str,
               code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
    super().__init__(code, message)
