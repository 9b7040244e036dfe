"""The model server in a subprocess on 127.0.0.1, on free ports.

What the servability gate (components/serving_validator.py), the tests and
the benchmarks start: `finsent serve`, as a user runs it, in a process of
its own so that a model that crashes the server cannot take the caller
down. It imports nothing of the server, so its callers load no TensorFlow
for it.
"""

import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List

import requests


def free_ports(count: int) -> List[int]:
  """`count` different ports free now (the server binds them a moment
  later). They are chosen while all are held open: one after another, the
  kernel may hand out the same port twice (a gRPC and a REST port that
  collided made a server exit with "Address already in use")."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def free_port() -> int:
  """A port free now (the server binds it a moment later)."""
  return free_ports(1)[0]


class ModelServerProcess:
  """`finsent serve FLAGS` with fresh ports; a context manager that waits
  until the server answers and stops it with SIGTERM."""

  def __init__(self, *flags: str, ready_model: str = 'sentiment',
               timeout_seconds: float = 120):
    self.grpc_port, self.rest_port = free_ports(2)
    self.grpc_target = f'127.0.0.1:{self.grpc_port}'
    self.rest_url = f'http://127.0.0.1:{self.rest_port}'
    self._command = [
        # The `finsent` console script may not be on PATH; this interpreter
        # runs the same command.
        sys.executable, '-m', 'finsent.commands.cli', 'serve',
        f'--port={self.grpc_port}', f'--rest_api_port={self.rest_port}',
        *flags]
    self._ready_model = ready_model
    self._timeout = timeout_seconds
    self._log = tempfile.TemporaryFile(mode='w+')
    self.process = None

  def __enter__(self) -> 'ModelServerProcess':
    self.process = subprocess.Popen(self._command, stdout=self._log,
                                    stderr=self._log)
    deadline = time.monotonic() + self._timeout
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f'server exited {self.process.returncode}:\n'
                           f'{self.log()[-5000:]}')
      try:
        if requests.get(f'{self.rest_url}/v1/models/{self._ready_model}',
                        timeout=1).status_code == 200:
          return self
      except requests.ConnectionError:
        pass
      time.sleep(0.2)
    self.__exit__(None, None, None)
    raise TimeoutError(f'server not ready:\n{self.log()[-5000:]}')

  def __exit__(self, *exc_info) -> None:
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
      try:
        self.process.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()

  def log(self) -> str:
    self._log.seek(0)
    return self._log.read()

  def url(self, path: str) -> str:
    return self.rest_url + path
