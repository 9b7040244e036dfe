"""Model status and metadata bodies, as protobuf's C++ JSON printer writes
them.

TF Serving answers GET /v1/models/... with the gRPC responses printed by
protobuf's C++ JSON printer (http_rest_api_util.cc; protobuf 3.21, which
TF Serving 2.16 links, with add_whitespace and
always_print_primitive_fields): 1-space indent, int64 as strings, '<' and
'>' escaped. Python's json_format lays messages out otherwise, so the
printer is reproduced here.
"""

import base64
import math
from typing import Any, Dict, List, Tuple

import grpc
import numpy as np
from google.protobuf import descriptor
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from finsent.serving.server.errors import RestRequestError
from finsent.serving.server.rest_json.rapidjson_writer import encode_body

def _proto_escapes() -> Dict[int, str]:
  """protobuf's JsonEscaping table (util/internal/json_escaping.cc)."""
  escaped = [*range(0x20), *range(0x7F, 0xA0),
             0x3C, 0x3E,  # '<' and '>', escaped by protobuf for HTML safety
             0xAD, 0x6DD, 0x70F, 0x17B4, 0x17B5, 0xFEFF, 0xFFF9, 0xFFFA,
             0xFFFB, *range(0x600, 0x604), *range(0x200B, 0x2010),
             *range(0x2028, 0x202F), *range(0x2060, 0x2065),
             *range(0x206A, 0x2070)]
  table = {c: '\\u%04x' % c for c in escaped}
  table.update({0x08: '\\b', 0x09: '\\t', 0x0A: '\\n', 0x0C: '\\f',
                0x0D: '\\r', 0x22: '\\"', 0x5C: '\\\\'})
  # These supplementary code points are written as UTF-16 surrogate pairs.
  for c in (0xE0001, *range(0x1D173, 0x1D17B), *range(0xE0020, 0xE0080)):
    offset = c - 0x10000
    table[c] = '\\u%04x\\u%04x' % (0xD800 + (offset >> 10),
                                   0xDC00 + (offset & 0x3FF))
  return table


_PROTO_ESCAPES = _proto_escapes()


def _proto_string(text: str) -> str:
  return '"' + text.translate(_PROTO_ESCAPES) + '"'


_WRAPPER_TYPES = frozenset(
    'google.protobuf.' + name for name in
    ('DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value',
     'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'))
_FD = descriptor.FieldDescriptor


def _proto_float(value: float, single: bool) -> str:
  """protobuf's SimpleFtoa/SimpleDtoa; non-finite values become strings."""
  if math.isnan(value):
    return '"NaN"'
  if math.isinf(value):
    return '"-Infinity"' if value < 0 else '"Infinity"'
  short, full = ('%.6g', '%.9g') if single else ('%.15g', '%.17g')
  text = short % value
  round_trip = float(np.float32(text)) if single else float(text)
  return text if round_trip == value else full % value


def _proto_scalar(field: descriptor.FieldDescriptor, value: Any) -> str:
  cpp_type = field.cpp_type
  if cpp_type in (_FD.CPPTYPE_INT64, _FD.CPPTYPE_UINT64):
    return f'"{value}"'  # proto3 JSON writes 64-bit integers as strings
  if cpp_type in (_FD.CPPTYPE_INT32, _FD.CPPTYPE_UINT32):
    return str(value)
  if cpp_type == _FD.CPPTYPE_BOOL:
    return 'true' if value else 'false'
  if cpp_type in (_FD.CPPTYPE_FLOAT, _FD.CPPTYPE_DOUBLE):
    return _proto_float(value, single=cpp_type == _FD.CPPTYPE_FLOAT)
  if cpp_type == _FD.CPPTYPE_ENUM:
    enum_value = field.enum_type.values_by_number.get(value)
    return _proto_string(enum_value.name) if enum_value else str(value)
  if field.type == _FD.TYPE_BYTES:
    return '"' + base64.b64encode(value).decode() + '"'
  return _proto_string(value)


def _proto_json_members(members: List[Tuple[str, str]], depth: int,
                        brackets: str) -> str:
  if not members:
    return brackets
  inner = ' ' * (depth + 1)
  lines = [inner + (f'{_proto_string(key)}: ' if key is not None else '') +
           text for key, text in members]
  return (brackets[0] + '\n' + ',\n'.join(lines) + '\n' + ' ' * depth +
          brackets[1])


def _proto_value(field: descriptor.FieldDescriptor, value: Any, depth: int,
                 json_names: bool) -> str:
  if field.cpp_type != _FD.CPPTYPE_MESSAGE:
    return _proto_scalar(field, value)
  if value.DESCRIPTOR.full_name in _WRAPPER_TYPES:
    return _proto_scalar(value.DESCRIPTOR.fields_by_name['value'], value.value)
  return _proto_message(value, depth, json_names)


def _proto_message(message: Any, depth: int, json_names: bool) -> str:
  """One message as protobuf's DefaultValueObjectWriter lays it out.

  Fields outside oneofs come first, in declaration order, with defaults
  filled in (absent sub-messages are skipped); set oneof members follow in
  field-number order. Map entries are sorted (protobuf's order is a hash
  map's, so no client can rely on it).

  Args:
    message: the proto message.
    depth: nesting depth, for indentation.
    json_names: print json_name (status) instead of the proto field name
      (metadata uses preserve_proto_field_names).

  Returns:
    The message's JSON text, without a trailing newline.
  """
  plain, oneof_members = [], []
  for field in message.DESCRIPTOR.fields:
    if field.containing_oneof is not None:
      if message.WhichOneof(field.containing_oneof.name) == field.name:
        oneof_members.append(field)
    elif (field.label == _FD.LABEL_REPEATED or
          field.cpp_type != _FD.CPPTYPE_MESSAGE or
          message.HasField(field.name)):
      plain.append(field)
  members = []
  for field in plain + sorted(oneof_members, key=lambda f: f.number):
    value = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions(
    ).map_entry:
      value_field = field.message_type.fields_by_name['value']
      entries = [(_map_key(key), _proto_value(value_field, value[key],
                                               depth + 2, json_names))
                 for key in sorted(value)]
      text = _proto_json_members(entries, depth + 1, '{}')
    elif field.label == _FD.LABEL_REPEATED:
      items = [(None, _proto_value(field, item, depth + 2, json_names))
               for item in value]
      text = _proto_json_members(items, depth + 1, '[]')
    else:
      text = _proto_value(field, value, depth + 1, json_names)
    members.append((field.json_name if json_names else field.name, text))
  return _proto_json_members(members, depth, '{}')


def _map_key(key: Any) -> str:
  if isinstance(key, bool):
    return 'true' if key else 'false'
  return str(key)


def status_json(response: get_model_status_pb2.GetModelStatusResponse
                ) -> bytes:
  """GET /v1/models/<name>[/versions/<v>]: TF Serving's exact body.

  TF Serving sets `status` on every version, OK ones included; a version
  without it is printed without a "status" member, as protobuf would.

  Args:
    response: the gRPC GetModelStatusResponse.

  Returns:
    The JSON response body.
  """
  return encode_body(_proto_message(response, 0, json_names=True) + '\n')


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse
                  ) -> bytes:
  """GET .../metadata: TF Serving's body, with the SignatureDefMap unpacked.

  TF Serving prints model_spec and the unpacked SignatureDefMap separately and
  glues them together (http_rest_api_util.cc), so the body has no "@type" and
  keeps its odd line breaks ("}\\n,\\n").

  Args:
    response: the gRPC GetModelMetadataResponse.

  Returns:
    The JSON response body.

  Raises:
    RestRequestError: (INTERNAL) the response has no signature_def metadata.
  """
  if 'signature_def' not in response.metadata:
    raise RestRequestError(
        "Failed to find 'signature_def' key in the GetModelMetadataResponse "
        'metadata map.', code=grpc.StatusCode.INTERNAL)
  signature_defs = get_model_metadata_pb2.SignatureDefMap()
  if not response.metadata['signature_def'].Unpack(signature_defs):
    raise RestRequestError(
        "Failed to unpack 'Any' object to 'SignatureDefMap'.", code=grpc.StatusCode.INTERNAL)
  model_spec = _proto_message(response.model_spec, 0, json_names=False)
  signatures = _proto_message(signature_defs, 0, json_names=False)
  return encode_body(
      '{\n'
      f'"model_spec":{model_spec}\n,\n'
      f'"metadata": {{"signature_def": {signatures}\n}}\n'
      '}\n')
