"""What production's `tensorflow_model_server` is given to serve the
pushed models (`finsent serving-config`, docs/serving.md).

tf_serving_config renders models.config, batching.config,
monitoring.config and the server's flags from PipelineConfig; manifests
renders the Kubernetes ConfigMap, Deployment and Service around them;
writer writes them all into one directory.
"""
