"""The REST API's JSON, as TensorFlow Serving 2.16 writes and reads it.

The local model server stands in for TF Serving, whose binary cannot be
installed here, so everything a REST client can observe follows TF
Serving's own implementation rather than a generic JSON library:

- rapidjson_writer: rapidjson's PrettyWriter layout and TF Serving's number
  formatting, for predict, classify and error bodies;
- request_parsing: request bodies parsed with rapidjson's error messages,
  and the members every request shares (signature name, strings, base64);
- predict_classify: predict and classify bodies to tensors and tf.Examples,
  and their results back (tensorflow_serving/util/json_tensor.cc);
- proto_printer: model status and metadata bodies, as protobuf's C++ JSON
  printer writes them (http_rest_api_util.cc).
"""
