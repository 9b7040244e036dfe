"""Serving the pushed models over TF Serving's REST and gRPC contract.

Two parts, independent of each other, on what both need:

- server/: the local model server behind `finsent serve`, a stand-in for
  `tensorflow_model_server` (versions, batching, metrics, the REST and gRPC
  APIs), and process.py, which starts it in a subprocess;
- deploy/: what production's `tensorflow_model_server` is given, written by
  `finsent serving-config`: models.config, batching.config,
  monitoring.config and Kubernetes manifests;
- config_files.py, below both: those config files' messages and parsers
  (deploy writes the files, the server reads them);
- client.py: SentimentClient, a client of any TF Serving (monitoring and
  the servability gate use it), importing neither part.

Only finsent.configs is imported from the rest of finsent; the command
lines are in finsent.commands (docs/serving.md).
"""
