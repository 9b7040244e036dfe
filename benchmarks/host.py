"""What a benchmark records about the machine it runs on."""

import os
import platform
import threading
import time
from typing import Dict, List, Tuple


def machine() -> Dict[str, object]:
  """CPU model, logical CPUs, physical cores, memory, OS and Python."""
  processors = []
  with open('/proc/cpuinfo', encoding='utf-8') as f:
    for block in f.read().strip().split('\n\n'):
      processors.append(dict(
          (key.strip(), value.strip()) for key, _, value in
          (line.partition(':') for line in block.splitlines())))
  with open('/proc/meminfo', encoding='utf-8') as f:
    memory_kib = next(int(line.split()[1]) for line in f
                      if line.startswith('MemTotal'))
  return {
      'cpu_model': processors[0].get('model name', platform.processor()),
      'logical_cpus': os.cpu_count(),
      'physical_cores': len({(p.get('physical id'), p.get('core id'))
                             for p in processors}),
      'memory_gib': round(memory_kib / 2 ** 20, 1),
      'os': platform.platform(),
      'python': platform.python_version(),
  }


def machine_cpu_seconds() -> float:
  """CPU seconds every process on the machine has used (/proc/stat: all
  but idle and iowait; steal included, as the hypervisor's other guests
  take those cores too)."""
  with open('/proc/stat', encoding='utf-8') as f:
    ticks = [int(v) for v in f.readline().split()[1:9]]
  return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf('SC_CLK_TCK')


class CpuSampler(threading.Thread):
  """Samples machine_cpu_seconds() every `period` seconds in the
  background, so that how busy the machine was in any window of a run
  (such as one component's execution) can be read afterwards."""

  def __init__(self, period: float = 0.25):
    super().__init__(daemon=True)
    self._period = period
    self._stopped = threading.Event()
    self.samples: List[Tuple[float, float]] = []  # (time.time(), CPU s)

  def run(self) -> None:
    while not self._stopped.wait(self._period):
      self.samples.append((time.time(), machine_cpu_seconds()))

  def stop(self) -> None:
    self._stopped.set()
    self.join()

  def busy_cores(self, start: float, end: float) -> float:
    """Mean busy cores between the first sample at or after `start` and
    the last at or before `end`."""
    inside = [s for s in self.samples if start <= s[0] <= end]
    if len(inside) < 2:
      raise ValueError(f'fewer than 2 CPU samples in [{start}, {end}]')
    (t0, cpu0), (t1, cpu1) = inside[0], inside[-1]
    return (cpu1 - cpu0) / (t1 - t0)
