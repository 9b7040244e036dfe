"""Beam worker start-up (`--beam_plugins=finsent.data.beam_worker`, one of
configs.DIRECT_RUNNER_ARGS), and the same release in the pipeline's own
process.

TFMA's and tf.Transform's DoFns load SavedModels through
`apache_beam.utils.shared.Shared`, whose map keeps the last one it handed
out alive in a module global. Beam imported that module before TensorFlow,
so at interpreter shutdown, which clears modules in reverse import order,
the model outlives TensorFlow's modules and each of its functions' __del__
fails (`Exception ignored in: <function AtomicFunction.__del__ ...>
TypeError: 'NoneType' object is not subscriptable`), three or more per
worker after every Beam stage. Releasing the model at exit, while
TensorFlow is whole, frees it cleanly; the process then exits as usual
(streams flushed, exit status kept).
"""

import atexit
import gc
import sys


def release_shared_models() -> None:
  shared = sys.modules.get('apache_beam.utils.shared')
  shared_map = getattr(shared, '_shared_map', None)
  if shared_map is not None and hasattr(shared_map, '_keepalive'):
    shared_map._keepalive = (None, None)  # pylint: disable=protected-access
  gc.collect()


atexit.register(release_shared_models)
