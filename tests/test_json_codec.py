"""Tests for serving/server/rest_json against TF Serving 2.16's REST contract.

Cases come from tensorflow_serving/g3doc/api_rest.md, json_tensor_test.cc and
http_rest_api_handler_test.cc; exact bodies are checked where TF Serving's
layout is known (rapidjson PrettyWriter, protobuf's C++ JSON printer).
"""

import json
import math

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from finsent.serving.server.errors import RestRequestError
from finsent.serving.server.rest_json import predict_classify
from finsent.serving.server.rest_json import proto_printer
from finsent.serving.server.rest_json import rapidjson_writer

DT = types_pb2


def _signature(**dtypes):
  signature = meta_graph_pb2.SignatureDef(
      method_name='tensorflow/serving/predict')
  for name, dtype in dtypes.items():
    signature.inputs[name].dtype = dtype
    signature.inputs[name].name = name + ':0'
  return signature


def _predict(body, **dtypes):
  signature = _signature(**dtypes)
  if isinstance(body, str):
    body = body.encode()
  return predict_classify.parse_predict_request(body, lambda name: signature)


def _predict_error(body, **dtypes):
  with pytest.raises(RestRequestError) as info:
    _predict(body, **dtypes)
  return info.value


def _assert_array(actual, expected, dtype):
  assert actual.dtype == dtype
  np.testing.assert_array_equal(actual, np.array(expected, dtype=dtype))


# --- api_rest.md: request formats -------------------------------------------


def test_row_format_single_input_list_of_scalars():
  request = _predict('{"instances": [ "foo", "bar", "baz" ]}', x=DT.DT_STRING)
  assert request.row_format and request.signature_name == ''
  _assert_array(request.inputs['x'], [b'foo', b'bar', b'baz'], object)


def test_row_format_single_input_nested_tensors():
  request = _predict('{"instances": [ [[1, 2]], [[3, 4]] ]}', x=DT.DT_INT32)
  _assert_array(request.inputs['x'], [[[1, 2]], [[3, 4]]], np.int32)


_THREE_INPUTS = dict(tag=DT.DT_STRING, signal=DT.DT_INT32, sensor=DT.DT_INT64)


def test_row_format_multiple_named_inputs():
  request = _predict("""{"instances": [
      {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
      {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}
  ]}""", **_THREE_INPUTS)
  _assert_array(request.inputs['tag'], [b'foo', b'bar'], object)
  _assert_array(request.inputs['signal'], [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                np.int32)
  _assert_array(request.inputs['sensor'], [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
                np.int64)


def test_columnar_format_matches_row_format():
  request = _predict("""{"inputs": {
      "tag": ["foo", "bar"],
      "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
      "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]
  }}""", **_THREE_INPUTS)
  assert not request.row_format
  _assert_array(request.inputs['tag'], [b'foo', b'bar'], object)
  _assert_array(request.inputs['sensor'], [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
                np.int64)


def test_columnar_inputs_may_differ_in_batch_size_and_ignore_extra_keys():
  request = _predict('{"inputs": {"a": [1.5], "b": [[1, 2], [3, 4]], '
                     '"unused": "x"}}', a=DT.DT_FLOAT, b=DT.DT_INT32)
  assert set(request.inputs) == {'a', 'b'}
  assert request.inputs['a'].shape == (1,)
  assert request.inputs['b'].shape == (2, 2)


def test_signature_name_is_passed_through():
  asked = []
  signature = _signature(x=DT.DT_INT32)

  def signature_for(name):
    asked.append(name)
    return signature

  request = predict_classify.parse_predict_request(
      b'{"signature_name": "predict_images", "instances": [[1,2]]}',
      signature_for)
  assert request.signature_name == 'predict_images'
  predict_classify.parse_predict_request(b'{"instances": [[1,2]]}',
                                         signature_for)
  assert asked == ['predict_images', '']


def test_signature_lookup_errors_propagate():
  def signature_for(name):
    raise KeyError(f'Serving signature name: "{name}" not found')

  with pytest.raises(KeyError):
    predict_classify.parse_predict_request(b'{"instances": [1]}', signature_for)


def test_signature_without_inputs():
  error = _predict_error('{"instances": [1]}')
  assert str(error) == 'Failed to get input map for signature: DEFAULT'


# --- json_tensor_test.cc: request parsing -----------------------------------


def test_single_unnamed_int_tensor():
  request = _predict('{"instances": [[1,2],[3,4],[5,6]]}', default=DT.DT_INT32)
  _assert_array(request.inputs['default'], [[1, 2], [3, 4], [5, 6]], np.int32)


def test_mixed_ints_and_floats_into_float_and_double():
  values = [1, 2.0, 3, 4, 5.003, 0.007, 0.0]
  body = json.dumps({'instances': values})
  _assert_array(_predict(body, x=DT.DT_FLOAT).inputs['x'], values, np.float32)
  _assert_array(_predict(body, x=DT.DT_DOUBLE).inputs['x'], values, np.float64)


def test_float_precision_loss_is_silent():
  for body in ('{"instances": [1435774380]}', '{"instances": [1435774380.0]}'):
    assert _predict(body, x=DT.DT_FLOAT).inputs['x'][0] == 1435774336


def test_float_overflow_and_underflow():
  body = '{"instances": [1.7976931348623157e308, -1.7976931348623157e308, ' \
         '2.2250738585072014e-308, -2.2250738585072014e-308]}'
  values = _predict(body, x=DT.DT_FLOAT).inputs['x']
  assert values[0] == np.inf and values[1] == -np.inf
  assert values[2] == 0 and math.copysign(1, values[3]) == -1


def test_base64_scalars_lists_and_named():
  request = _predict(
      '{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}',
      x=DT.DT_STRING)
  _assert_array(request.inputs['x'], [b'hello', b'world'], object)
  request = _predict(
      '{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}',
      x=DT.DT_STRING)
  assert request.inputs['x'].shape == (2, 1)
  request = _predict('{"instances": [{"x": [[{"b64": "aGVsbG8="}], '
                     '[{"b64": "d29ybGQ="}]]}]}', x=DT.DT_STRING)
  _assert_array(request.inputs['x'], [[[b'hello'], [b'world']]], object)


def test_multiple_named_tensors_with_non_finite_values():
  request = _predict("""{"instances": [
      {"i": [[1,2],[3,4],[5,6]], "s": ["foo", "bar"], "f": [1.0, NaN],
       "d": [NaN]},
      {"i": [[7,8],[9,0],[1,2]], "s": ["baz", "bat"], "f": [2.0, Infinity],
       "d": [2.0]}]}""", i=DT.DT_INT32, s=DT.DT_STRING, f=DT.DT_FLOAT,
                     d=DT.DT_DOUBLE)
  assert request.inputs['i'].shape == (2, 3, 2)
  _assert_array(request.inputs['s'], [[b'foo', b'bar'], [b'baz', b'bat']],
                object)
  _assert_array(request.inputs['f'], [[1.0, np.nan], [2.0, np.inf]],
                np.float32)
  _assert_array(request.inputs['d'], [[np.nan], [2.0]], np.float64)


def test_columnar_single_input_named_or_bare():
  for body in ('{"inputs": {"x": [[[1,2],[3,4],[5,6]]]}}',
               '{"inputs": [[[1,2],[3,4],[5,6]]]}'):
    request = _predict(body, x=DT.DT_INT32)
    assert request.inputs['x'].shape == (1, 3, 2)


def test_columnar_scalar_base64_input():
  request = _predict('{"inputs": {"i": [[[1,2]]], "s": ["foo", "bar"], '
                     '"b": {"b64": "aGVsbG8="}}}',
                     i=DT.DT_INT32, s=DT.DT_STRING, b=DT.DT_STRING)
  assert request.inputs['b'].shape == ()
  assert request.inputs['b'].item() == b'hello'


@pytest.mark.parametrize('body, message', [
    ('', 'JSON Parse error: The document is empty'),
    ('instances = [1, 2]', 'JSON Parse error: Invalid value. at offset: 0'),
    ('{"instances": [1 2]}',
     "JSON Parse error: Missing a comma or ']' after an array element. "
     'at offset: 17'),
    ('{"instances": [1] "x": 1}',
     "JSON Parse error: Missing a comma or '}' after an object member. "
     'at offset: 18'),
    ('{"instances": [1]} []', 'JSON Parse error: The document root must not '
     'be followed by other values. at offset: 19'),
    ('{"instances": [1e999]}', 'JSON Parse error: Number too big to be stored '
     'in double. at offset: 15'),
    ('[1]', 'JSON Value: [\n    1\n] Is not object'),
    ('{"signature_name": 5, "instances": [1]}',
     'JSON Value: {\n    "signature_name": 5,\n    "instances": [\n        1\n'
     "    ]\n} not formatted correctly. 'signature_name' key must be a "
     'string value.'),
    ('{"instances": [1], "inputs": [1]}',
     'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n'
     "        1\n    ]\n} Not formatted correctly expecting only one of "
     "'inputs' or 'instances' keys to exist "),
    ('{"signature_name": "s"}', "Missing 'inputs' or 'instances' key"),
    ('{"instances": []}',
     'JSON Value: {\n    "instances": []\n} No values in \'instances\' array'),
    ('{"instances": 1}', 'JSON Value: {\n    "instances": 1\n} Expecting '
     "'instances' to be an list/array"),
])
def test_document_errors(body, message):
  assert str(_predict_error(body, x=DT.DT_INT32)) == message


@pytest.mark.parametrize('instances, message', [
    ('[[1,2],[3,4],[5,6,7]]', 'Failed to process element: 2 of \'instances\' '
     'list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3'),
    ('[[1,2],[3,4],[[5,6]]]', 'Failed to process element: 2 of \'instances\' '
     'list. Error: INVALID_ARGUMENT: Expecting shape [2] but got: [1,2]'),
    ('[1, [1]]', 'Failed to process element: 1 of \'instances\' list. Error: '
     'INVALID_ARGUMENT: Expecting shape [] but got: [1]'),
    ('[[1,2],["a", "b"]]', 'Failed to process element: 1 of \'instances\' '
     'list. Error: INVALID_ARGUMENT: JSON Value: "a" Type: String is not of '
     'expected type: int32'),
    ('[1.5]', 'Failed to process element: 0 of \'instances\' list. Error: '
     'INVALID_ARGUMENT: JSON Value: 1.5 Type: Number is not of expected type: '
     'int32'),
    ('[true]', 'Failed to process element: 0 of \'instances\' list. Error: '
     'INVALID_ARGUMENT: JSON Value: true Type: True is not of expected type: '
     'int32'),
    ('[3000000000]', 'Failed to process element: 0 of \'instances\' list. '
     'Error: INVALID_ARGUMENT: JSON Value: 3000000000 Type: Number is not of '
     'expected type: int32'),
    ('[[1, [2]]]', 'Failed to process element: 0 of \'instances\' list. Error: '
     'INVALID_ARGUMENT: Encountered list at unexpected level: 1 expected < 1'),
    ('[[[1], 2]]', 'Failed to process element: 0 of \'instances\' list. Error: '
     'INVALID_ARGUMENT: JSON Value: 2 found at incorrect level: 2 in the JSON '
     'DOM. Expected at level: 2'),
    ('[{"b64": "AAAA"}]', 'Failed to process element: 0 of \'instances\' '
     'list. Error: INVALID_ARGUMENT: JSON Value: {\n    "b64": "AAAA"\n} Type: '
     'Object is not of expected type: int32'),
])
def test_single_input_row_errors(instances, message):
  error = _predict_error('{"instances": %s}' % instances, x=DT.DT_INT32)
  assert str(error) == message
  assert error.http_status == 400


def test_strings_into_float_input():
  error = _predict_error('{"instances": ["x", "y"]}', x=DT.DT_FLOAT)
  assert 'not of expected type: float' in str(error)


def test_narrow_ints_wrap_like_tensor_proto():
  request = _predict('{"instances": [300, -1]}', x=DT.DT_UINT8)
  _assert_array(request.inputs['x'], [44, 255], np.uint8)


def test_64_bit_and_bool_inputs():
  request = _predict('{"inputs": {"i": [-9223372036854775808], '
                     '"u": [18446744073709551615], "b": [true, false]}}',
                     i=DT.DT_INT64, u=DT.DT_UINT64, b=DT.DT_BOOL)
  _assert_array(request.inputs['i'], [-2**63], np.int64)
  _assert_array(request.inputs['u'], [2**64 - 1], np.uint64)
  _assert_array(request.inputs['b'], [True, False], np.bool_)
  error = _predict_error('{"inputs": [1]}', x=DT.DT_BOOL)
  assert 'Type: Number is not of expected type: bool' in str(error)


def test_unsupported_input_dtype():
  error = _predict_error('{"inputs": [1.0]}', x=DT.DT_HALF)
  assert str(error) == 'Conversion of JSON Value: 1.0 to type: half'
  assert error.code == grpc.StatusCode.UNIMPLEMENTED and error.http_status == 501
  # Row format wraps the same error in an INVALID_ARGUMENT one.
  error = _predict_error('{"instances": [1.0]}', x=DT.DT_HALF)
  assert error.code == grpc.StatusCode.INVALID_ARGUMENT
  assert str(error).endswith('Error: UNIMPLEMENTED: Conversion of JSON Value: '
                             '1.0 to type: half')


_TWO_INPUTS = dict(i=DT.DT_INT32, s=DT.DT_STRING)


@pytest.mark.parametrize('instances, message', [
    ('[{"i": [[1,2]], "s": ["a"]}, {"i": [[[1,2]]], "s": ["b"]}]',
     "Failed to process element: 1 key: i of 'instances' list. Error: "
     'INVALID_ARGUMENT: Expecting shape [1,2] but got: [1,1,2]'),
    ('[{"i": [1,2], "s": ["a"]}, {"i": [1], "s": ["b"]}]',
     "Failed to process element: 1 key: i of 'instances' list. Error: "
     'INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1'),
    ('[{"i": 1, "s": "a"}, [1, 20, 30]]',
     'Expecting object but got list at item 1 of input list'),
    ('[{"i": 1}]', "Failed to process element: 0 of 'instances' list. JSON "
     'object: {\n    "i": 1\n} keys must be equal to: i,s'),
    ('[{"i": 1, "s": "a", "t": 2}]', "Failed to process element: 0 key: t of "
     "'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have "
     'named input: t'),
    ('[[1, 2]]', 'instances is a plain list, but expecting list of objects as '
     'multiple input tensors required as per tensorinfo_map'),
    ('[{"i": 1, "s": {"b64": "!!"}}]', "Failed to process element: 0 key: s "
     "of 'instances' list. Error: INVALID_ARGUMENT: Unable to base64 decode"),
    ('[{"i": 1, "s": {"b64": 1}}]', "Failed to process element: 0 key: s of "
     "'instances' list. Error: INVALID_ARGUMENT: JSON Value: {\n    \"b64\": "
     '1\n} not formatted correctly for base64 data'),
])
def test_multiple_input_row_errors(instances, message):
  error = _predict_error('{"instances": %s}' % instances, **_TWO_INPUTS)
  assert str(error) == message


def test_value_where_objects_expected_and_vice_versa():
  error = _predict_error('{"instances": [["baz", "bar"], {"x": ["baz"]}]}',
                         x=DT.DT_STRING)
  assert str(error) == 'Expecting value/list but got object at item 1 of ' \
                       'input list'


@pytest.mark.parametrize('inputs, message', [
    ('{"i": [1]}', "Missing named input: s in 'inputs' object."),
    ('[1, 2]', 'inputs is a plain value/list, but expecting an object as '
     'multiple input tensors required as per tensorinfo_map'),
    ('{"i": [1, [2]], "s": "a"}',
     'Encountered list at unexpected level: 1 expected < 1'),
])
def test_columnar_errors(inputs, message):
  error = _predict_error('{"inputs": %s}' % inputs, **_TWO_INPUTS)
  assert str(error) == message


def test_base64_is_as_lenient_as_absl():
  # Whitespace is skipped and padding may be omitted, but not be wrong.
  request = _predict('{"inputs": [{"b64": "aGVs\\nbG8"}, {"b64": "aGk="}]}',
                     x=DT.DT_STRING)
  _assert_array(request.inputs['x'], [b'hello', b'hi'], object)
  for bad in ('aGk=x', 'aGVsbG8==', 'a', 'aGVsbG8-'):
    error = _predict_error('{"inputs": [{"b64": "%s"}]}' % bad, x=DT.DT_STRING)
    assert str(error) == 'Unable to base64 decode'


def test_unicode_strings_become_utf8_bytes():
  request = _predict('{"instances": ["caf\\u00e9", "€"]}', x=DT.DT_STRING)
  _assert_array(request.inputs['x'], ['café'.encode(), '€'.encode()], object)


# --- json_tensor_test.cc / api_rest.md: predict responses -------------------


_INT_2x3x2 = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
                      np.int32)


def test_single_output_row_and_columnar():
  rows = predict_classify.format_predict_response({'t': _INT_2x3x2}, True)
  assert json.loads(rows) == {'predictions': _INT_2x3x2.tolist()}
  columns = predict_classify.format_predict_response({'t': _INT_2x3x2}, False)
  assert json.loads(columns) == {'outputs': _INT_2x3x2.tolist()}


def test_row_format_layout_matches_tf_serving():
  # api_rest.md's half_plus_three example, in PrettyWriter's layout.
  body = predict_classify.format_predict_response(
      {'y': np.array([3.5, 4.0, 5.5], np.float32)}, True)
  assert body == b'{\n    "predictions": [3.5, 4.0, 5.5\n    ]\n}'
  body = predict_classify.format_predict_response(
      {'y': np.array([[2.5, 3.0], [3.5, 4.0]], np.float32)}, True)
  assert body == b'{\n    "predictions": [[2.5, 3.0], [3.5, 4.0]\n    ]\n}'


def test_columnar_layout_matches_tf_serving():
  body = predict_classify.format_predict_response(
      {'y': np.array([3.5, 4.0], np.float32)}, False)
  assert body == b'{\n    "outputs": [\n        3.5,\n        4.0\n    ]\n}'
  body = predict_classify.format_predict_response({'y': np.float32(2.0)}, False)
  assert body == b'{\n    "outputs": 2.0\n}'


def test_multiple_outputs_row_and_columnar():
  outputs = {
      'int_tensor': _INT_2x3x2,
      'str_tensor': np.array([[b'foo', b'bar'], [b'baz', b'bat']], object),
      'float_tensor': np.array([[1.0], [2.0]], np.float32),
      'double_scalar_tensor': np.array([8.0, 9.0]),
      'str_tensor_bytes': np.array([[b'hello', b'world'], [b'tf', b'serving']],
                                   object),
  }
  rows = json.loads(predict_classify.format_predict_response(outputs, True))
  assert rows == {'predictions': [
      {'double_scalar_tensor': 8.0, 'float_tensor': [1.0],
       'int_tensor': [[1, 2], [3, 4], [5, 6]], 'str_tensor': ['foo', 'bar'],
       'str_tensor_bytes': [{'b64': 'aGVsbG8='}, {'b64': 'd29ybGQ='}]},
      {'double_scalar_tensor': 9.0, 'float_tensor': [2.0],
       'int_tensor': [[7, 8], [9, 0], [1, 2]], 'str_tensor': ['baz', 'bat'],
       'str_tensor_bytes': [{'b64': 'dGY='}, {'b64': 'c2VydmluZw=='}]}]}
  columns = json.loads(predict_classify.format_predict_response(outputs, False))
  assert columns == {'outputs': {
      'double_scalar_tensor': [8.0, 9.0], 'float_tensor': [[1.0], [2.0]],
      'int_tensor': _INT_2x3x2.tolist(),
      'str_tensor': [['foo', 'bar'], ['baz', 'bat']],
      'str_tensor_bytes': [[{'b64': 'aGVsbG8='}, {'b64': 'd29ybGQ='}],
                           [{'b64': 'dGY='}, {'b64': 'c2VydmluZw=='}]]}}


def test_multiple_outputs_row_layout():
  body = predict_classify.format_predict_response(
      {'classes': np.array([[b'neg', b'pos']], object),
       'scores': np.array([[0.25, 0.75]], np.float32)}, True)
  assert body == (b'{\n    "predictions": [\n        {\n'
                  b'            "classes": ["neg", "pos"],\n'
                  b'            "scores": [0.25, 0.75]\n        }\n    ]\n}')


def test_float_formatting():
  body = predict_classify.format_predict_response({'f': np.array(
      [[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5],
       [np.nan, np.inf, -np.inf], [0.1, 1.0 / 3, -0.0]], np.float32)}, True)
  assert body.decode().split('[', 1)[1] == (
      '[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5], '
      '[NaN, Infinity, -Infinity], [0.1, 0.333333343, -0.0]\n    ]\n}')
  body = predict_classify.format_predict_response(
      {'d': np.array([0.1, 1.0 / 3])}, False)
  assert b'0.1,' in body and b'0.33333333333333331' in body


def test_string_outputs_are_raw_utf8_with_rapidjson_escapes():
  body = predict_classify.format_predict_response(
      {'s': np.array([b'caf\xc3\xa9 "q"\\\n\x01'], object)}, True)
  assert body == (b'{\n    "predictions": ["caf\xc3\xa9 \\"q\\"\\\\\\n\\u0001"'
                  b'\n    ]\n}')


def test_zero_batch_outputs():
  empty = {'i': np.zeros((0, 2), np.int32), 's': np.zeros((0, 1, 2), object)}
  assert json.loads(predict_classify.format_predict_response(empty, True)) == {
      'predictions': []}


@pytest.mark.parametrize('outputs, message', [
    ({}, 'Cannot convert empty tensor map to JSON'),
    ({'t': np.array([1 + 2j], np.complex64)},
     'Failed to write JSON value for tensor type: complex64'),
    ({'t': np.array([1], np.float16)},
     'Failed to write JSON value for tensor type: half'),
    ({'t': np.int32(1)}, 'Tensor name: t has no shape information '),
    ({'a': np.zeros((2, 3), np.int32), 'b': np.zeros((1, 3), object)},
     'Tensor name: b has inconsistent batch size: 1 expecting: 2'),
])
def test_output_errors(outputs, message):
  with pytest.raises(RestRequestError) as info:
    predict_classify.format_predict_response(outputs, True)
  assert str(info.value) == message


# --- classify / regress ------------------------------------------------------


def _features(example):
  return {name: getattr(feature, feature.WhichOneof('kind')).value[:]
          for name, feature in example.features.feature.items()}


def test_classify_request_without_context():
  name, request_input = predict_classify.parse_classify_request(
      b"""{"examples": [
      {"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
      {"names": ["baz"], "ratings": 6.0}]}""")
  assert name == ''
  examples = request_input.example_list.examples
  assert _features(examples[0]) == {'names': [b'foo', b'bar'],
                                    'ratings': [8.0, 9.0], 'age': [20]}
  assert _features(examples[1]) == {'names': [b'baz'], 'ratings': [6.0]}


def test_classify_request_with_context_and_signature():
  name, request_input = predict_classify.parse_classify_request(b"""{
      "signature_name": "custom_signture",
      "context": {"query": "pizza", "location": ["sfo"]},
      "examples": [
        {"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity]},
        {"names": ["baz", {"b64": "aGVsbG8="}], "intboolmix": [1, true, false]},
        {"names": "bar", "ratings": -Infinity}]}""")
  assert name == 'custom_signture'
  with_context = request_input.example_list_with_context
  assert _features(with_context.context) == {'query': [b'pizza'],
                                             'location': [b'sfo']}
  ratings = _features(with_context.examples[0])['ratings']
  assert ratings[:2] == [8.0, 9.0] and math.isnan(ratings[2])
  assert _features(with_context.examples[1]) == {
      'names': [b'baz', b'hello'], 'intboolmix': [1, 1, 0]}
  assert _features(with_context.examples[2])['ratings'] == [-math.inf]


def test_classify_request_from_api_rest_md():
  _, request_input = predict_classify.parse_classify_request(b"""{
      "signature_name": "classify_objects",
      "examples": [
        {"image": {"b64": "aW1hZ2UgYnl0ZXM="}, "caption": "seaside"},
        {"image": {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="},
         "caption": "mountains"}]}""")
  assert _features(request_input.example_list.examples[1]) == {
      'image': [b'awesome image bytes'], 'caption': [b'mountains']}


@pytest.mark.parametrize('body, message', [
    ('{"signature_name": ["hello"], "examples": [{"names": ["foo"]}]}',
     "'signature_name' key must be a string value."),
    ('{"context": [{"names": ["foo", "bar"]}]}',
     'Example must be JSON object but got JSON Array'),
    ('{"examples": {"names": ["foo", "bar"]}}',
     "Expecting 'examples' value to be an list/array"),
    ('{"examples": []}', "'examples' value is an empty array"),
    ('{"signature_name": "s"}', "When method is classify, key 'examples' is "
     'expected and was not found'),
    ('{"examples": [[{"names": ["foo", "bar"]}]]}',
     'Example must be JSON object but got JSON Array'),
    ('{"examples": [{"names": [10, null]}]}',
     'Feature: names has element with unexpected JSON type: Null'),
    ('{"examples": [{"names": [10, 10.0]}]}',
     'Unexpected element type in feature: names expecting type: int64'),
    ('{"examples": [{"names": [10, {"test": 10}]}]}',
     'Feature: names has element with unexpected JSON type: Object'),
    ('{"examples": [{"names": [[10], 20]}]}',
     'Feature: names has element with unexpected JSON type: Array'),
    ('{"examples": [{"names": [20, 18446744073709551603]}]}',
     'Feature: names has uint64_t element. Only int64_t is supported.'),
])
def test_classify_request_errors(body, message):
  with pytest.raises(RestRequestError) as info:
    predict_classify.parse_classify_request(body.encode())
  assert str(info.value).endswith(message)


def test_classify_response():
  result = classification_pb2.ClassificationResult()
  for scores in ([0.2, 0.7, 0.1], [0.7, 0.1, 0.2]):
    classes = result.classifications.add().classes
    for label, score in zip(['car', 'bike', 'bus'], scores):
      classes.add(label=label, score=score)
  assert predict_classify.format_classify_response(result) == (
      b'{\n    "results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]], '
      b'[["car", 0.7], ["bike", 0.1], ["bus", 0.2]]\n    ]\n}')


def test_empty_classify_results():
  with pytest.raises(RestRequestError, match='empty ClassificationResults'):
    predict_classify.format_classify_response(
        classification_pb2.ClassificationResult())


# --- status, metadata, errors ------------------------------------------------


def test_status_json_matches_api_rest_md():
  response = get_model_status_pb2.GetModelStatusResponse()
  response.model_version_status.add(
      version=123, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
  ).status.SetInParent()  # TF Serving always sets it, OK included
  assert proto_printer.status_json(response) == (
      b'{\n "model_version_status": [\n  {\n   "version": "123",\n'
      b'   "state": "AVAILABLE",\n   "status": {\n    "error_code": "OK",\n'
      b'    "error_message": ""\n   }\n  }\n ]\n}\n')


def test_status_json_for_a_version_that_failed_to_load():
  response = get_model_status_pb2.GetModelStatusResponse()
  status = response.model_version_status.add(
      version=2, state=get_model_status_pb2.ModelVersionStatus.END)
  status.status.error_code = error_codes_pb2.NOT_FOUND
  status.status.error_message = "Op type not registered 'X' <in> \"binary\""
  body = proto_printer.status_json(response).decode()
  assert json.loads(body)['model_version_status'][0] == {
      'version': '2', 'state': 'END', 'status': {
          'error_code': 'NOT_FOUND',
          'error_message': "Op type not registered 'X' <in> \"binary\""}}
  # protobuf's printer escapes '<' and '>'.
  assert '\\u003cin\\u003e \\"binary\\"' in body


def _tensor_info(name, dims):
  info = meta_graph_pb2.TensorInfo(name=name, dtype=DT.DT_FLOAT)
  for size in dims:
    info.tensor_shape.dim.add(size=size)
  return info


def test_metadata_json_layout():
  signature = meta_graph_pb2.SignatureDef(
      method_name='tensorflow/serving/predict')
  signature.inputs['x'].CopyFrom(_tensor_info('x:0', [-1, 1]))
  signature.outputs['y'].CopyFrom(_tensor_info('y:0', [-1]))
  signature_defs = get_model_metadata_pb2.SignatureDefMap()
  signature_defs.signature_def['serving_default'].CopyFrom(signature)
  response = get_model_metadata_pb2.GetModelMetadataResponse()
  response.model_spec.name = 'half_plus_two'
  response.model_spec.version.value = 123
  response.metadata['signature_def'].Pack(signature_defs)

  def dim(size, indent):
    pad = ' ' * indent
    return (f'{pad}{{\n{pad} "size": "{size}",\n{pad} "name": ""\n{pad}}}')

  def tensor(alias, name, sizes):
    dims = ',\n'.join(dim(size, 7) for size in sizes)
    return (f'    "{alias}": {{\n     "dtype": "DT_FLOAT",\n'
            f'     "tensor_shape": {{\n      "dim": [\n{dims}\n      ],\n'
            f'      "unknown_rank": false\n     }},\n'
            f'     "name": "{name}"\n    }}')

  expected = (
      '{\n"model_spec":{\n "name": "half_plus_two",\n "signature_name": "",\n'
      ' "version": "123"\n}\n,\n"metadata": {"signature_def": {\n'
      ' "signature_def": {\n  "serving_default": {\n   "inputs": {\n'
      f'{tensor("x", "x:0", [-1, 1])}\n   }},\n   "outputs": {{\n'
      f'{tensor("y", "y:0", [-1])}\n   }},\n'
      '   "method_name": "tensorflow/serving/predict",\n   "defaults": {}\n'
      '  }\n }\n}\n}\n}\n')
  assert proto_printer.metadata_json(response).decode() == expected


def test_metadata_without_signature_defs():
  with pytest.raises(RestRequestError) as info:
    proto_printer.metadata_json(
        get_model_metadata_pb2.GetModelMetadataResponse())
  assert info.value.code == grpc.StatusCode.INTERNAL and info.value.http_status == 500


def test_error_json():
  assert rapidjson_writer.error_json('Bad key: "key"') == \
      b'{\n    "error": "Bad key: \\"key\\""\n}'
  body = rapidjson_writer.error_json(
      'Servable not found for request: Latest(half)')
  assert json.loads(body) == {
      'error': 'Servable not found for request: Latest(half)'}


def test_http_status_mapping():
  expected = {'INVALID_ARGUMENT': 400, 'NOT_FOUND': 404,
              'FAILED_PRECONDITION': 400, 'UNIMPLEMENTED': 501,
              'UNAVAILABLE': 503, 'RESOURCE_EXHAUSTED': 429, 'INTERNAL': 500,
              'DEADLINE_EXCEEDED': 504}
  for code, http_status in expected.items():
    assert RestRequestError('m', grpc.StatusCode[code]).http_status == (
        http_status)


@pytest.mark.parametrize('body', [
    '[' * 5000 + ']' * 5000,                              # past json's limit
    '{"instances": ' + '[' * 400 + '"a"' + ']' * 400 + '}',  # past ours
])
def test_deeply_nested_bodies_are_refused(body):
  with pytest.raises(RestRequestError, match='nesting deeper than 300'):
    predict_classify.parse_predict_request(body.encode(), lambda name: None)
