"""Predict and classify over REST: JSON values to tensors, and back.

What TF Serving's json_tensor.cc does for :predict and :classify (and
:regress, whose body is classify's): request values are checked against
the signature's input dtypes and converted to tensors (row format,
"instances", or columnar, "inputs"), "examples" become tf.Examples, and
outputs are written as {"predictions": ...}, {"outputs": ...} or
{"results": ...}; every refusal carries TF Serving's message.
"""

import base64
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import grpc
import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.example import feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import input_pb2

from finsent.serving.server.errors import RestRequestError
from finsent.serving.server.rest_json.rapidjson_writer import bytes_text
from finsent.serving.server.rest_json.rapidjson_writer import json_type_string
from finsent.serving.server.rest_json.rapidjson_writer import json_value_to_string
from finsent.serving.server.rest_json.rapidjson_writer import PrettyWriter
from finsent.serving.server.rest_json.rapidjson_writer import rapidjson_string
from finsent.serving.server.rest_json.rapidjson_writer import write_decimal
from finsent.serving.server.rest_json.request_parsing import decode_base64_object
from finsent.serving.server.rest_json.request_parsing import format_error
from finsent.serving.server.rest_json.request_parsing import INT32_RANGE
from finsent.serving.server.rest_json.request_parsing import INT64_RANGE
from finsent.serving.server.rest_json.request_parsing import is_base64_object
from finsent.serving.server.rest_json.request_parsing import parse_object
from finsent.serving.server.rest_json.request_parsing import parse_signature_name
from finsent.serving.server.rest_json.request_parsing import UINT32_RANGE
from finsent.serving.server.rest_json.request_parsing import UINT64_RANGE
from finsent.serving.server.rest_json.request_parsing import utf8


@dataclasses.dataclass
class PredictRequest:
  signature_name: str  # '' -> caller uses 'serving_default'
  inputs: Dict[str, np.ndarray]  # keyed by input alias, dtype from signature
  row_format: bool  # True for "instances", False for "inputs"


# ---------------------------------------------------------------------------
# Predict requests.


def _dtype_name(dtype: int) -> str:
  """TensorFlow's DataTypeString: DT_FLOAT -> 'float'."""
  return types_pb2.DataType.Name(dtype)[len('DT_'):].lower()


def _type_error(value: Any, dtype: int) -> RestRequestError:
  return RestRequestError(
      f'JSON Value: {json_value_to_string(value)} Type: '
      f'{json_type_string(value)} is not of expected type: '
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
    types_pb2.DT_INT32: lambda v: _int_in(v, INT32_RANGE),
    types_pb2.DT_INT16: lambda v: _int_in(v, INT32_RANGE),
    types_pb2.DT_INT8: lambda v: _int_in(v, INT32_RANGE),
    types_pb2.DT_UINT8: lambda v: _int_in(v, INT32_RANGE),
    types_pb2.DT_INT64: lambda v: _int_in(v, INT64_RANGE),
    types_pb2.DT_UINT32: lambda v: _int_in(v, UINT32_RANGE),
    types_pb2.DT_UINT64: lambda v: _int_in(v, UINT64_RANGE),
    types_pb2.DT_BOOL: lambda v: isinstance(v, bool),
}


def _leaf_converter(dtype: int) -> Callable[[Any], Any]:
  """Checks and converts one scalar JSON value for a tensor of `dtype`."""
  if dtype == types_pb2.DT_STRING:
    def convert_string(value):
      if isinstance(value, dict):
        return decode_base64_object(value)
      if not isinstance(value, str):
        raise _type_error(value, dtype)
      return utf8(value)
    return convert_string

  accepts = _ACCEPTS.get(dtype)

  def convert(value):
    if isinstance(value, dict):
      raise _type_error(value, dtype)
    if accepts is None:
      raise RestRequestError(
          f'Conversion of JSON Value: {json_value_to_string(value)} to type: '
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
          f'JSON Value: {json_value_to_string(value)} found at incorrect '
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
  return isinstance(value, dict) and not is_base64_object(value)


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
            f'JSON object: {json_value_to_string(element)} keys must be '
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
  document = parse_object(body)
  signature_name = parse_signature_name(document)
  input_infos = dict(signature_for(signature_name).inputs)
  if not input_infos:
    raise RestRequestError('Failed to get input map for signature: ' +
                           (signature_name or 'DEFAULT'))
  if 'instances' in document:
    if 'inputs' in document:
      raise format_error(
          document, "Not formatted correctly expecting only one of 'inputs' "
          "or 'instances' keys to exist ")
    instances = document['instances']
    if not isinstance(instances, list):
      raise format_error(document,
                          "Expecting 'instances' to be an list/array")
    if not instances:
      raise format_error(document, "No values in 'instances' array")
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
                   ) -> Callable[[PrettyWriter, Any], None]:
  """Returns how to write one element of `array` (AddSingleValueAndAdvance)."""
  kind = array.dtype.kind
  if array.dtype == np.float32:
    return lambda w, v: w.raw(write_decimal(v, single=True))
  if array.dtype == np.float64:
    return lambda w, v: w.raw(write_decimal(v, single=False))
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
    return lambda w, v: w.raw(rapidjson_string(bytes_text(_as_bytes(v))))
  type_name = 'half' if array.dtype == np.float16 else array.dtype.name

  def unsupported(writer, value):
    del writer, value  # TF Serving fails on the first value it tries
    raise RestRequestError(
        f'Failed to write JSON value for tensor type: {type_name}')
  return unsupported


def _write_nested(writer: PrettyWriter, value: Any,
                  write_leaf: Callable[[PrettyWriter, Any], None]) -> None:
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
  writer = PrettyWriter()
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
        f'{json_type_string(value)}')

  if value is None or isinstance(value, list):
    raise unexpected_type()
  if isinstance(value, bool):
    require('int64_list')
    feature.int64_list.value.append(int(value))
  elif isinstance(value, dict):
    if not is_base64_object(value):
      raise unexpected_type()
    require('bytes_list')
    feature.bytes_list.value.append(decode_base64_object(value))
  elif isinstance(value, str):
    require('bytes_list')
    feature.bytes_list.value.append(utf8(value))
  elif isinstance(value, float):
    require('float_list')
    feature.float_list.value.append(value)
  else:
    require('int64_list')
    if value > INT64_RANGE[1]:
      raise RestRequestError(
          f'Feature: {name} has uint64_t element. Only int64_t is supported.')
    feature.int64_list.value.append(value)


def _fill_example(value: Any, example: example_pb2.Example) -> None:
  if not isinstance(value, dict):
    raise RestRequestError(
        f'Example must be JSON object but got JSON {json_type_string(value)}')
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
  document = parse_object(body)
  signature_name = parse_signature_name(document)
  request_input = input_pb2.Input()
  has_context = 'context' in document
  if has_context:
    _fill_example(document['context'],
                  request_input.example_list_with_context.context)
  if 'examples' not in document:
    raise format_error(document, "When method is classify, key 'examples' "
                        'is expected and was not found')
  examples = document['examples']
  if not isinstance(examples, list):
    raise format_error(document,
                        "Expecting 'examples' value to be an list/array")
  if not examples:
    raise format_error(document, "'examples' value is an empty array")
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
  writer = PrettyWriter()
  writer.start_object()
  writer.key('results')
  writer.start_array()
  for classifications in result.classifications:
    writer.single_line = True
    writer.start_array()
    for cls in classifications.classes:
      writer.start_array()
      writer.raw(rapidjson_string(cls.label))
      writer.raw(write_decimal(cls.score, single=True))
      writer.end_array()
    writer.end_array()
    writer.single_line = False
  writer.end_array()
  writer.end_object()
  return writer.body()
