"""What a benchmark records about the machine it runs on."""

import os
import platform
from typing import Dict


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
