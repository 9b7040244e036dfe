"""Serving the pushed models over TF Serving's REST and gRPC contract."""
