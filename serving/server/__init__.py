"""The local model server: TF Serving's contract where
`tensorflow_model_server` cannot run (`finsent serve`, docs/serving.md).

assembly builds and runs it from ServerOptions; core resolves model specs
and runs signatures for both APIs (grpc_api, rest_api, whose JSON is in
rest_json); model_manager loads and unloads versions, batching merges
concurrent requests, metrics exports Prometheus counters and errors holds
the status codes. process starts the server in a subprocess without
importing any of it.
"""
