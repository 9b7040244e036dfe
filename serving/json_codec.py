"""Converts between TensorFlow Serving's REST JSON and tensors.

The local model server stands in for TensorFlow Serving 2.16, whose binary
cannot be installed here, so everything a REST client can observe follows TF
Serving's own implementation rather than a generic JSON library:

* predict/classify/regress bodies, number formatting, base64 handling and the
  error messages come from tensorflow_serving/util/json_tensor.cc;
* the model status and metadata bodies come from http_rest_api_util.cc, which
  prints the protos with protobuf's C++ JSON printer;

TF Serving writes predict/classify/error bodies with rapidjson's PrettyWriter
(4-space indent, rows kept on one line) and status/metadata bodies with
protobuf's printer (1-space indent, int64 as strings, '<' and '>' escaped).
Both layouts are reproduced here instead of json.dumps output, so clients that
compare bodies or parse numbers textually see what TF Serving would send.
Request parsing uses the stdlib json module: it accepts the NaN/Infinity
tokens TF Serving accepts (orjson does not).
"""

import base64
import dataclasses
import json
import math
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import grpc
import numpy as np
from google.protobuf import descriptor
from tensorflow.core.example import example_pb2
from tensorflow.core.example import feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import input_pb2

from finsent.serving.errors import ServingError

class RestRequestError(ServingError):
  """A request TF Serving would reject; the message is TF Serving's.

  Almost every case is INVALID_ARGUMENT (HTTP 400); `code` is another
  canonical code where TF Serving uses one, e.g. UNIMPLEMENTED (501) for a
  columnar value fed to an input dtype JSON cannot express.
  """

  def __init__(self, message: str,
               code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
    super().__init__(code, message)


@dataclasses.dataclass
class PredictRequest:
  signature_name: str  # '' -> caller uses 'serving_default'
  inputs: Dict[str, np.ndarray]  # keyed by input alias, dtype from signature
  row_format: bool  # True for "instances", False for "inputs"


# ---------------------------------------------------------------------------
# rapidjson-compatible writing (json_tensor.cc uses rapidjson::PrettyWriter).

_INDENT = '    '

# rapidjson's Writer escapes only '"', '\\' and control characters, the latter
# with upper-case hex; everything else (UTF-8 included) is written raw.
_RAPIDJSON_ESCAPES = {i: '\\u%04X' % i for i in range(0x20)}
_RAPIDJSON_ESCAPES.update({
    0x08: '\\b', 0x09: '\\t', 0x0A: '\\n', 0x0C: '\\f', 0x0D: '\\r',
    ord('"'): '\\"', ord('\\'): '\\\\'})


def _rapidjson_string(text: str) -> str:
  return '"' + text.translate(_RAPIDJSON_ESCAPES) + '"'


def _bytes_text(value: bytes) -> str:
  # Tensor strings are arbitrary bytes and rapidjson copies them verbatim;
  # surrogateescape carries undecodable bytes through to the encoded body.
  return value.decode('utf-8', 'surrogateescape')


def _encode_body(text: str) -> bytes:
  return text.encode('utf-8', 'surrogateescape')


def _write_decimal(value: float, single: bool) -> str:
  """Formats a float the way json_tensor.cc's WriteDecimal does.

  Six significant digits unless that does not round-trip, then full
  precision; whole numbers get '.0' so a list never mixes ints and floats.

  Args:
    value: the number; for float32 tensors, the float32 value as a float.
    single: whether the number is a float32 (round-trip checked as float32).

  Returns:
    The JSON token, including NaN / Infinity / -Infinity.
  """
  if math.isnan(value):
    return 'NaN'
  if math.isinf(value):
    return '-Infinity' if value < 0 else 'Infinity'
  text = '%g' % value
  round_trip = float(np.float32(text)) if single else float(text)
  if round_trip != value:
    text = ('%.9g' if single else '%.17g') % value
  if '.' not in text and 'e' not in text:
    text += '.0'
  return text


def _grisu_double(value: float) -> str:
  """Formats a float like rapidjson's Writer::Double (shortest digits).

  Only error messages that quote a nested JSON value use this; TF Serving's
  tensor output goes through _write_decimal.
  """
  if math.isnan(value):
    return 'NaN'
  if math.isinf(value):
    return '-Infinity' if value < 0 else 'Infinity'
  sign = '-' if math.copysign(1.0, value) < 0 else ''
  if value == 0:
    return sign + '0.0'
  mantissa, _, exponent = repr(abs(value)).partition('e')
  whole, _, fraction = mantissa.partition('.')
  digits = (whole + fraction).lstrip('0')
  k = int(exponent or 0) - len(fraction)
  stripped = digits.rstrip('0')
  k += len(digits) - len(stripped)
  digits = stripped
  kk = len(digits) + k  # 10^(kk-1) <= |value| < 10^kk
  if 0 <= k and kk <= 21:
    text = digits + '0' * k + '.0'
  elif 0 < kk <= 21:
    text = digits[:kk] + '.' + digits[kk:]
  elif -6 < kk <= 0:
    text = '0.' + '0' * -kk + digits
  elif len(digits) == 1:
    text = digits + 'e' + str(kk - 1)
  else:
    text = digits[0] + '.' + digits[1:] + 'e' + str(kk - 1)
  return sign + text


def _pretty_value(value: Any, depth: int) -> str:
  """A parsed JSON value in rapidjson PrettyWriter's default layout."""
  if isinstance(value, dict):
    if not value:
      return '{}'
    inner = _INDENT * (depth + 1)
    members = [f'{inner}{_rapidjson_string(k)}: {_pretty_value(v, depth + 1)}'
               for k, v in value.items()]
    return '{\n' + ',\n'.join(members) + '\n' + _INDENT * depth + '}'
  if isinstance(value, list):
    if not value:
      return '[]'
    inner = _INDENT * (depth + 1)
    items = [inner + _pretty_value(v, depth + 1) for v in value]
    return '[\n' + ',\n'.join(items) + '\n' + _INDENT * depth + ']'
  if value is None:
    return 'null'
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return _grisu_double(value)
  return _rapidjson_string(value)


def _json_value_to_string(value: Any) -> str:
  """json_tensor.cc's JsonValueToString, used to quote values in errors."""
  if isinstance(value, float):
    # rapidjson's IsFloat() is "a double within float range", so such a
    # number is quoted after rounding to float32.
    if -3.4028234e38 <= value <= 3.4028234e38:
      return _write_decimal(float(np.float32(value)), single=True)
    return _write_decimal(value, single=False)
  return _pretty_value(value, 0)


def _json_type_string(value: Any) -> str:
  if value is None:
    return 'Null'
  if isinstance(value, bool):
    return 'True' if value else 'False'
  if isinstance(value, dict):
    return 'Object'
  if isinstance(value, list):
    return 'Array'
  if isinstance(value, str):
    return 'String'
  return 'Number'


class _PrettyWriter:
  """rapidjson::PrettyWriter's layout rules, driven by the same call sequence.

  TF Serving toggles kFormatSingleLineArray while writing rows, and the exact
  placement of newlines depends on the format in force when each value starts
  and each array ends, so the writer replays rapidjson's state machine.
  """

  def __init__(self):
    self._out = []
    self._levels = []  # [in_array, value_count] per open container
    self.single_line = False

  def _prefix(self):
    if not self._levels:
      return
    level = self._levels[-1]
    if level[0]:
      if level[1] > 0:
        self._out.append(', ' if self.single_line else ',')
      if not self.single_line:
        self._out.append('\n' + _INDENT * len(self._levels))
    else:
      if level[1] == 0:
        self._out.append('\n')
      elif level[1] % 2 == 0:
        self._out.append(',\n')
      else:
        self._out.append(': ')
      if level[1] % 2 == 0:
        self._out.append(_INDENT * len(self._levels))
    level[1] += 1

  def raw(self, token: str):
    self._prefix()
    self._out.append(token)

  def key(self, name: str):
    self.raw(_rapidjson_string(name))

  def start_array(self):
    self._prefix()
    self._levels.append([True, 0])
    self._out.append('[')

  def end_array(self):
    _, count = self._levels.pop()
    if count and not self.single_line:
      self._out.append('\n' + _INDENT * len(self._levels))
    self._out.append(']')

  def start_object(self):
    self._prefix()
    self._levels.append([False, 0])
    self._out.append('{')

  def end_object(self):
    _, count = self._levels.pop()
    if count:
      self._out.append('\n' + _INDENT * len(self._levels))
    self._out.append('}')

  def body(self) -> bytes:
    return _encode_body(''.join(self._out))


def error_json(message: str) -> bytes:
  """The body TF Serving sends with any error: {"error": message}."""
  writer = _PrettyWriter()
  writer.start_object()
  writer.key('error')
  writer.raw(_rapidjson_string(message))
  writer.end_object()
  return writer.body()


# ---------------------------------------------------------------------------
# Request parsing.

_INT32_RANGE = (-2**31, 2**31 - 1)
_UINT32_RANGE = (0, 2**32 - 1)
_INT64_RANGE = (-2**63, 2**63 - 1)
_UINT64_RANGE = (0, 2**64 - 1)

# Python's json messages (by prefix: some append the offending character) ->
# rapidjson's (rapidjson/error/en.h). Python's ',' message does not say which
# container is open; _parse_json resolves that one.
_PARSE_ERRORS = (
    ('Expecting value', 'Invalid value.'),
    ('Extra data', 'The document root must not be followed by other values.'),
    ('Expecting property name', 'Missing a name for object member.'),
    ("Expecting ':'", 'Missing a colon after a name of object member.'),
    ('Unterminated string', 'Missing a closing quotation mark in string.'),
    ('Invalid control character', 'Invalid encoding in string.'),
    ('Invalid \\uXXXX', 'Incorrect hex digit after \\u escape in string.'),
    ('Invalid \\escape', 'Invalid escape character in string.'),
)


class _NumberTooBig(Exception):
  """A JSON number beyond double range, which rapidjson rejects."""

  def __init__(self, literal: str):
    super().__init__(literal)
    self.literal = literal


def _parse_int(literal: str):
  # rapidjson keeps integers in [-2^63, 2^64) as integers and turns larger
  # ones into doubles; the dtype checks below depend on that distinction.
  try:
    value = int(literal)
    if _INT64_RANGE[0] <= value <= _UINT64_RANGE[1]:
      return value
    return float(value)
  except (ValueError, OverflowError):  # over 4300 digits / beyond double
    raise _NumberTooBig(literal) from None


def _parse_float(literal: str) -> float:
  value = float(literal)
  if math.isinf(value):
    raise _NumberTooBig(literal)
  return value


def _innermost_container(text: str) -> str:
  """'[' or '{': the container still open at the end of `text`."""
  stack = []
  in_string = escaped = False
  for char in text:
    if in_string:
      if escaped:
        escaped = False
      elif char == '\\':
        escaped = True
      elif char == '"':
        in_string = False
    elif char == '"':
      in_string = True
    elif char in '[{':
      stack.append(char)
    elif char in ']}' and stack:
      stack.pop()
  return stack[-1] if stack else ''


# Deeper bodies are refused before anything recurses into them: a tensor
# has at most 254 dimensions (TensorShape's limit) plus the JSON objects
# around it, and Python's recursion limit (1000) is then never reached.
_MAX_DEPTH = 300


def _depth(value: Any) -> int:
  """How deeply lists and objects nest in `value` (without recursion)."""
  deepest, stack = 0, [(value, 1)]
  while stack:
    value, depth = stack.pop()
    if isinstance(value, (list, dict)):
      deepest = max(deepest, depth)
      if depth > _MAX_DEPTH:
        break
      children = value.values() if isinstance(value, dict) else value
      stack.extend((child, depth + 1) for child in children)
  return deepest


def _parse_json(body: bytes) -> Any:
  """Parses a request body as TF Serving's ParseJson does (NaN/Infinity ok)."""
  if not body:
    raise RestRequestError('JSON Parse error: The document is empty')
  # Invalid UTF-8 is passed through (rapidjson does not validate encoding).
  text = body.decode('utf-8', 'surrogateescape')
  bom = 3 if text.startswith('\ufeff') else 0  # rapidjson skips a BOM
  text = text[1:] if bom else text

  def offset(position: int) -> int:
    return bom + len(_encode_body(text[:position]))

  if not text.strip(' \t\n\r'):
    raise RestRequestError('JSON Parse error: The document is empty. '
                           f'at offset: {offset(len(text))}')
  too_deep = RestRequestError(
      f'JSON Parse error: nesting deeper than {_MAX_DEPTH} levels')
  try:
    document = json.loads(text, parse_int=_parse_int,
                          parse_float=_parse_float)
  except RecursionError:
    raise too_deep from None
  except _NumberTooBig as e:
    raise RestRequestError(
        'JSON Parse error: Number too big to be stored in double. '
        f'at offset: {offset(max(text.find(e.literal), 0))}') from None
  except json.JSONDecodeError as e:
    if e.msg == "Expecting ',' delimiter":
      if _innermost_container(text[:e.pos]) == '{':
        message = "Missing a comma or '}' after an object member."
      else:
        message = "Missing a comma or ']' after an array element."
    else:
      message = next((rapidjson for prefix, rapidjson in _PARSE_ERRORS
                      if e.msg.startswith(prefix)), e.msg + '.')
    position = len(text) if e.msg.startswith('Unterminated') else e.pos
    raise RestRequestError(
        f'JSON Parse error: {message} at offset: {offset(position)}') from None
  if _depth(document) > _MAX_DEPTH:
    raise too_deep
  return document


def _format_error(value: Any, *parts: str) -> RestRequestError:
  return RestRequestError(
      f'JSON Value: {_json_value_to_string(value)} ' + ''.join(parts))


def _parse_object(body: bytes) -> Dict[str, Any]:
  document = _parse_json(body)
  if not isinstance(document, dict):
    raise _format_error(document, 'Is not object')
  return document


def _signature_name(document: Dict[str, Any]) -> str:
  name = document.get('signature_name', '')
  if not isinstance(name, str):
    raise _format_error(
        document,
        "not formatted correctly. 'signature_name' key must be a string value.")
  return name


def _utf8(text: str) -> bytes:
  try:
    return _encode_body(text)
  except UnicodeEncodeError:  # a lone \uD800-style escape
    raise RestRequestError(
        'JSON Parse error: The surrogate pair in string is invalid.') from None


def _is_base64_object(value: Any) -> bool:
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get('b64'), str))


_ABSL_SPACE = re.compile('[ \t\n\v\f\r]')
_BASE64_BODY = re.compile('([A-Za-z0-9+/]*)([=.]*)')


def _decode_base64_object(value: Any) -> bytes:
  """Decodes {"b64": ...} with absl::Base64Unescape's leniency.

  absl skips ASCII whitespace, and accepts either no padding or exactly the
  right padding ('=' or '.'); anything outside the standard alphabet fails.

  Args:
    value: the JSON value that should be a base64 object.

  Returns:
    The decoded bytes.

  Raises:
    RestRequestError: with TF Serving's message for a malformed object or
      undecodable data.
  """
  if not _is_base64_object(value):
    raise _format_error(value, 'not formatted correctly for base64 data')
  match = _BASE64_BODY.fullmatch(_ABSL_SPACE.sub('', value['b64']))
  if match:
    data, padding = match.groups()
    expected_padding = {0: 0, 2: 2, 3: 1}.get(len(data) % 4)
    if expected_padding is not None and len(padding) in (0, expected_padding):
      return base64.b64decode(data + '=' * expected_padding)
  raise RestRequestError('Unable to base64 decode')


def _dtype_name(dtype: int) -> str:
  """TensorFlow's DataTypeString: DT_FLOAT -> 'float'."""
  return types_pb2.DataType.Name(dtype)[len('DT_'):].lower()


def _type_error(value: Any, dtype: int) -> RestRequestError:
  return RestRequestError(
      f'JSON Value: {_json_value_to_string(value)} Type: '
      f'{_json_type_string(value)} is not of expected type: '
      f'{_dtype_name(dtype)}')


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_in(value: Any, bounds: Tuple[int, int]) -> bool:
  # Only integer literals count: rapidjson's IsInt() is false for 1.0.
  return (isinstance(value, int) and not isinstance(value, bool) and
          bounds[0] <= value <= bounds[1])


# Which JSON values each dtype accepts (json_tensor.cc, AddValueToTensor).
# The 8/16-bit types accept any int32 and wrap, like TensorProto.int_val.
_ACCEPTS = {
    types_pb2.DT_FLOAT: _is_number,
    types_pb2.DT_DOUBLE: _is_number,
    types_pb2.DT_INT32: lambda v: _int_in(v, _INT32_RANGE),
    types_pb2.DT_INT16: lambda v: _int_in(v, _INT32_RANGE),
    types_pb2.DT_INT8: lambda v: _int_in(v, _INT32_RANGE),
    types_pb2.DT_UINT8: lambda v: _int_in(v, _INT32_RANGE),
    types_pb2.DT_INT64: lambda v: _int_in(v, _INT64_RANGE),
    types_pb2.DT_UINT32: lambda v: _int_in(v, _UINT32_RANGE),
    types_pb2.DT_UINT64: lambda v: _int_in(v, _UINT64_RANGE),
    types_pb2.DT_BOOL: lambda v: isinstance(v, bool),
}


def _leaf_converter(dtype: int) -> Callable[[Any], Any]:
  """Checks and converts one scalar JSON value for a tensor of `dtype`."""
  if dtype == types_pb2.DT_STRING:
    def convert_string(value):
      if isinstance(value, dict):
        return _decode_base64_object(value)
      if not isinstance(value, str):
        raise _type_error(value, dtype)
      return _utf8(value)
    return convert_string

  accepts = _ACCEPTS.get(dtype)

  def convert(value):
    if isinstance(value, dict):
      raise _type_error(value, dtype)
    if accepts is None:
      raise RestRequestError(
          f'Conversion of JSON Value: {_json_value_to_string(value)} to type: '
          f'{_dtype_name(dtype)}', code=grpc.StatusCode.UNIMPLEMENTED)
    if not accepts(value):
      raise _type_error(value, dtype)
    return value
  return convert


def _dense_shape(value: Any) -> List[int]:
  """The shape implied by following the first element of each nested list."""
  shape = []
  while isinstance(value, list):
    shape.append(len(value))
    if not value:
      break
    value = value[0]
  return shape


def _collect(value: Any, level: int, shape: List[int],
             convert: Callable[[Any], Any], out: List[Any]) -> None:
  """Appends the leaves of `value` to `out`, checking it is dense."""
  rank = len(shape)
  if not isinstance(value, list):
    if level != rank:
      raise RestRequestError(
          f'JSON Value: {_json_value_to_string(value)} found at incorrect '
          f'level: {level + 1} in the JSON DOM. Expected at level: {rank}')
    out.append(convert(value))
    return
  if level >= rank:
    raise RestRequestError(
        f'Encountered list at unexpected level: {level} expected < {rank}')
  if len(value) != shape[level]:
    raise RestRequestError(
        f'Encountered list at unexpected size: {len(value)} at level: '
        f'{level} expected size: {shape[level]}')
  for item in value:
    _collect(item, level + 1, shape, convert, out)


_NUMPY_TYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
    types_pb2.DT_BOOL: np.bool_,
}


def _to_array(leaves: List[Any], shape: List[int], dtype: int) -> np.ndarray:
  """Builds the tensor the way TensorProto -> Tensor conversion would."""
  if dtype == types_pb2.DT_STRING:
    array = np.empty(len(leaves), dtype=object)
    array[:] = leaves
  elif dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
    # rapidjson's GetFloat() is (float)GetDouble(): round via double, and
    # overflow to +/-inf silently (json_tensor_test.cc expects inf).
    with np.errstate(over='ignore'):
      array = np.array(leaves, dtype=np.float64).astype(_NUMPY_TYPES[dtype])
  elif dtype == types_pb2.DT_UINT64:
    array = np.array(leaves, dtype=np.uint64)
  else:
    # Through int64 so that int8/int16/uint8 wrap like a C cast does.
    array = np.array(leaves, dtype=np.int64).astype(_NUMPY_TYPES[dtype])
  return array.reshape(shape)


def _tensor_from_value(value: Any, dtype: int
                       ) -> Tuple[List[Any], List[int]]:
  shape = _dense_shape(value)
  leaves = []
  _collect(value, 0, shape, _leaf_converter(dtype), leaves)
  return leaves, shape


def _shape_string(shape: List[int]) -> str:
  return '[' + ','.join(str(d) for d in shape) + ']'


def _is_named_object(value: Any) -> bool:
  return isinstance(value, dict) and not _is_base64_object(value)


def _wrap_instance_error(error: RestRequestError, index: int,
                         key: Optional[str]) -> RestRequestError:
  # TF Serving nests the inner status with Status::ToString(), which prefixes
  # its code, and reports the whole thing as INVALID_ARGUMENT.
  where = f'{index} key: {key}' if key is not None else f'{index}'
  return RestRequestError(
      f'Failed to process element: {where} of \'instances\' list. '
      f'Error: {error.code.name}: {error}')


def _inputs_from_instances(
    instances: List[Any],
    input_infos: Dict[str, meta_graph_pb2.TensorInfo]) -> Dict[str, np.ndarray]:
  """Row format: every instance contributes one row to every input."""
  elements_are_objects = _is_named_object(instances[0])
  if not elements_are_objects and len(input_infos) > 1:
    # TF Serving lets a leading {"b64": ...} past this check, feeds it to an
    # arbitrary one of the inputs and fails in Predict; it is rejected here.
    raise RestRequestError(
        'instances is a plain list, but expecting list of objects as multiple '
        'input tensors required as per tensorinfo_map')
  input_names = sorted(input_infos)
  leaves = {name: [] for name in input_names}
  sizes = {}
  shapes = {}

  def add_item(item, name):
    if name not in input_infos:
      raise RestRequestError(
          f'JSON object: does not have named input: {name}')
    item_leaves, shape = _tensor_from_value(item, input_infos[name].dtype)
    if name not in sizes:
      sizes[name], shapes[name] = len(item_leaves), shape
    elif sizes[name] != len(item_leaves):
      raise RestRequestError(
          f'Expecting tensor size: {sizes[name]} but got: {len(item_leaves)}')
    elif shapes[name] != shape:
      raise RestRequestError(
          f'Expecting shape {_shape_string(shapes[name])} but got: '
          f'{_shape_string(shape)}')
    leaves[name].extend(item_leaves)

  for index, element in enumerate(instances):
    if elements_are_objects:
      if not _is_named_object(element):
        raise RestRequestError(
            f'Expecting object but got list at item {index} of input list')
      for key, item in element.items():
        try:
          add_item(item, key)
        except RestRequestError as e:
          raise _wrap_instance_error(e, index, key) from None
      if set(element) != set(input_names):
        raise RestRequestError(
            f'Failed to process element: {index} of \'instances\' list. '
            f'JSON object: {_json_value_to_string(element)} keys must be '
            f'equal to: {",".join(input_names)}')
    else:
      if _is_named_object(element):
        raise RestRequestError(
            f'Expecting value/list but got object at item {index} of input '
            'list')
      try:
        add_item(element, input_names[0])
      except RestRequestError as e:
        raise _wrap_instance_error(e, index, None) from None
  return {
      name: _to_array(leaves[name], [len(instances)] + shapes[name],
                      input_infos[name].dtype)
      for name in input_names
  }


def _inputs_from_columns(
    columns: Any,
    input_infos: Dict[str, meta_graph_pb2.TensorInfo]) -> Dict[str, np.ndarray]:
  """Columnar format: each input given whole, no shared batch dimension."""
  if not _is_named_object(columns):
    if len(input_infos) > 1:
      raise RestRequestError(
          'inputs is a plain value/list, but expecting an object as multiple '
          'input tensors required as per tensorinfo_map')
    named = {next(iter(input_infos)): columns}
  else:
    # Keys that are not inputs of the signature are ignored, as in TF Serving.
    named = {}
    for name in sorted(input_infos):
      if name not in columns:
        raise RestRequestError(
            f"Missing named input: {name} in 'inputs' object.")
      named[name] = columns[name]
  inputs = {}
  for name, value in named.items():
    dtype = input_infos[name].dtype
    leaves, shape = _tensor_from_value(value, dtype)
    inputs[name] = _to_array(leaves, shape, dtype)
  return inputs


def parse_predict_request(
    body: bytes,
    signature_for: Callable[[str], meta_graph_pb2.SignatureDef]
) -> PredictRequest:
  """Parses a :predict body into input tensors, as FillPredictRequestFromJson.

  Args:
    body: the raw HTTP request body.
    signature_for: returns the SignatureDef for a signature name ('' for the
      default); its own errors (unknown model, version, signature) propagate,
      and it is called after the JSON parses, where TF Serving looks it up.

  Returns:
    The signature name as sent, the input tensors keyed by input alias (string
    inputs as object arrays of bytes) and whether the row format was used.

  Raises:
    RestRequestError: a body TF Serving rejects, with TF Serving's message.
  """
  document = _parse_object(body)
  signature_name = _signature_name(document)
  input_infos = dict(signature_for(signature_name).inputs)
  if not input_infos:
    raise RestRequestError('Failed to get input map for signature: ' +
                           (signature_name or 'DEFAULT'))
  if 'instances' in document:
    if 'inputs' in document:
      raise _format_error(
          document, "Not formatted correctly expecting only one of 'inputs' "
          "or 'instances' keys to exist ")
    instances = document['instances']
    if not isinstance(instances, list):
      raise _format_error(document,
                          "Expecting 'instances' to be an list/array")
    if not instances:
      raise _format_error(document, "No values in 'instances' array")
    return PredictRequest(signature_name,
                          _inputs_from_instances(instances, input_infos),
                          row_format=True)
  if 'inputs' in document:
    return PredictRequest(signature_name,
                          _inputs_from_columns(document['inputs'], input_infos),
                          row_format=False)
  raise RestRequestError("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------
# Predict responses.


def _as_bytes(value: Any) -> bytes:
  return value.encode('utf-8') if isinstance(value, str) else bytes(value)


def _output_writer(name: str, array: np.ndarray
                   ) -> Callable[[_PrettyWriter, Any], None]:
  """Returns how to write one element of `array` (AddSingleValueAndAdvance)."""
  kind = array.dtype.kind
  if array.dtype == np.float32:
    return lambda w, v: w.raw(_write_decimal(v, single=True))
  if array.dtype == np.float64:
    return lambda w, v: w.raw(_write_decimal(v, single=False))
  if kind in 'iu' and array.dtype != np.uint16:  # DT_UINT16 is not writable
    return lambda w, v: w.raw(str(v))
  if kind == 'b':
    return lambda w, v: w.raw('true' if v else 'false')
  if kind in 'OSU':
    if name.endswith('_bytes'):
      # CMLE's convention, kept by TF Serving: *_bytes outputs are binary.
      def write_base64(writer, value):
        writer.start_object()
        writer.key('b64')
        writer.raw('"' + base64.b64encode(_as_bytes(value)).decode() + '"')
        writer.end_object()
      return write_base64
    return lambda w, v: w.raw(_rapidjson_string(_bytes_text(_as_bytes(v))))
  type_name = 'half' if array.dtype == np.float16 else array.dtype.name

  def unsupported(writer, value):
    del writer, value  # TF Serving fails on the first value it tries
    raise RestRequestError(
        f'Failed to write JSON value for tensor type: {type_name}')
  return unsupported


def _write_nested(writer: _PrettyWriter, value: Any,
                  write_leaf: Callable[[_PrettyWriter, Any], None]) -> None:
  if isinstance(value, list):
    writer.start_array()
    for item in value:
      _write_nested(writer, item, write_leaf)
    writer.end_array()
  else:
    write_leaf(writer, value)


def format_predict_response(outputs: Dict[str, np.ndarray],
                            row_format: bool) -> bytes:
  """Writes predict outputs as TF Serving's MakeJsonFromTensors does.

  Row format answers {"predictions": [...]}, one entry per batch row (a bare
  value when there is one output, an object keyed by output otherwise);
  columnar format answers {"outputs": ...} with whole tensors. Outputs are
  written in name order (TF Serving's order is its hash map's).

  Args:
    outputs: output tensors keyed by output alias.
    row_format: whether the request used "instances".

  Returns:
    The JSON response body.

  Raises:
    RestRequestError: outputs TF Serving cannot write (no outputs, a scalar or
      mismatched batch sizes in row format, a dtype JSON cannot express).
  """
  if not outputs:
    raise RestRequestError('Cannot convert empty tensor map to JSON')
  arrays = {name: np.asarray(outputs[name]) for name in sorted(outputs)}
  writers = {name: _output_writer(name, a) for name, a in arrays.items()}
  values = {name: a.tolist() for name, a in arrays.items()}
  writer = _PrettyWriter()
  writer.start_object()
  multiple = len(arrays) > 1
  if row_format:
    batch_size = None
    for name, array in arrays.items():
      if array.ndim == 0:
        raise RestRequestError(
            f'Tensor name: {name} has no shape information ')
      if batch_size is not None and array.shape[0] != batch_size:
        raise RestRequestError(
            f'Tensor name: {name} has inconsistent batch size: '
            f'{array.shape[0]} expecting: {batch_size}')
      batch_size = array.shape[0]
    writer.key('predictions')
    writer.start_array()
    for row in range(batch_size):
      if multiple:
        writer.start_object()
      writer.single_line = True
      for name in arrays:
        if multiple:
          writer.key(name)
        _write_nested(writer, values[name][row], writers[name])
      writer.single_line = False
      if multiple:
        writer.end_object()
    writer.end_array()
  else:
    writer.key('outputs')
    if multiple:
      writer.start_object()
    for name in arrays:
      if multiple:
        writer.key(name)
      _write_nested(writer, values[name], writers[name])
    if multiple:
      writer.end_object()
  writer.end_object()
  return writer.body()


# ---------------------------------------------------------------------------
# Classify / regress.

_FEATURE_KIND_NAMES = {'bytes_list': 'bytes', 'float_list': 'float',
                       'int64_list': 'int64', None: 'UNKNOWN'}


def _add_feature_value(value: Any, name: str,
                       feature: feature_pb2.Feature) -> None:
  """json_tensor.cc's AddValueToFeature: one JSON scalar into a Feature."""
  kind = feature.WhichOneof('kind')

  def require(wanted):
    if kind not in (None, wanted):
      raise RestRequestError(
          f'Unexpected element type in feature: {name} expecting type: '
          f'{_FEATURE_KIND_NAMES[kind]}')

  def unexpected_type():
    return RestRequestError(
        f'Feature: {name} has element with unexpected JSON type: '
        f'{_json_type_string(value)}')

  if value is None or isinstance(value, list):
    raise unexpected_type()
  if isinstance(value, bool):
    require('int64_list')
    feature.int64_list.value.append(int(value))
  elif isinstance(value, dict):
    if not _is_base64_object(value):
      raise unexpected_type()
    require('bytes_list')
    feature.bytes_list.value.append(_decode_base64_object(value))
  elif isinstance(value, str):
    require('bytes_list')
    feature.bytes_list.value.append(_utf8(value))
  elif isinstance(value, float):
    require('float_list')
    feature.float_list.value.append(value)
  else:
    require('int64_list')
    if value > _INT64_RANGE[1]:
      raise RestRequestError(
          f'Feature: {name} has uint64_t element. Only int64_t is supported.')
    feature.int64_list.value.append(value)


def _fill_example(value: Any, example: example_pb2.Example) -> None:
  if not isinstance(value, dict):
    raise RestRequestError(
        f'Example must be JSON object but got JSON {_json_type_string(value)}')
  for name, content in value.items():
    feature = feature_pb2.Feature()
    for item in content if isinstance(content, list) else [content]:
      _add_feature_value(item, name, feature)
    example.features.feature[name].CopyFrom(feature)


def parse_classify_request(body: bytes) -> Tuple[str, input_pb2.Input]:
  """Parses a :classify (or :regress) body into tf.Examples.

  Args:
    body: the raw HTTP request body.

  Returns:
    (signature_name as sent, Input with example_list, or with
    example_list_with_context when the body has a "context" object).

  Raises:
    RestRequestError: a body TF Serving rejects, with TF Serving's message
      (which says "classify" for :regress too).
  """
  document = _parse_object(body)
  signature_name = _signature_name(document)
  request_input = input_pb2.Input()
  has_context = 'context' in document
  if has_context:
    _fill_example(document['context'],
                  request_input.example_list_with_context.context)
  if 'examples' not in document:
    raise _format_error(document, "When method is classify, key 'examples' "
                        'is expected and was not found')
  examples = document['examples']
  if not isinstance(examples, list):
    raise _format_error(document,
                        "Expecting 'examples' value to be an list/array")
  if not examples:
    raise _format_error(document, "'examples' value is an empty array")
  target = (request_input.example_list_with_context.examples if has_context
            else request_input.example_list.examples)
  for example in examples:
    _fill_example(example, target.add())
  return signature_name, request_input


def format_classify_response(
    result: classification_pb2.ClassificationResult) -> bytes:
  """{"results": [[[label, score], ...], ...]}, one list per example."""
  if not result.classifications:
    raise RestRequestError(
        'Cannot convert empty ClassificationResults to JSON')
  writer = _PrettyWriter()
  writer.start_object()
  writer.key('results')
  writer.start_array()
  for classifications in result.classifications:
    writer.single_line = True
    writer.start_array()
    for cls in classifications.classes:
      writer.start_array()
      writer.raw(_rapidjson_string(cls.label))
      writer.raw(_write_decimal(cls.score, single=True))
      writer.end_array()
    writer.end_array()
    writer.single_line = False
  writer.end_array()
  writer.end_object()
  return writer.body()


# ---------------------------------------------------------------------------
# Status and metadata: protobuf's C++ JSON printer (protobuf 3.21, which TF
# Serving 2.16 links) with add_whitespace and always_print_primitive_fields.

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
  return _encode_body(_proto_message(response, 0, json_names=True) + '\n')


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
  return _encode_body(
      '{\n'
      f'"model_spec":{model_spec}\n,\n'
      f'"metadata": {{"signature_def": {signatures}\n}}\n'
      '}\n')
