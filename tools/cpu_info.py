"""The CPU model name for benchmark output (`lscpu`'s, else /proc/cpuinfo's); standard library
only, so that the TensorFlow and the PyTorch benchmark tools (which may run in separate
virtualenvs) both import it from this folder."""
import subprocess


def cpu_model() -> str:
  """E.g. 'Intel(R) Xeon(R) Processor'; 'unknown CPU' where neither source says."""
  try:
    for line in subprocess.run(['lscpu'], capture_output=True, text=True,
                               check=True).stdout.splitlines():
      if line.startswith('Model name:'):
        return line.split(':', 1)[1].strip()
  except (OSError, subprocess.CalledProcessError):
    pass
  try:
    with open('/proc/cpuinfo') as cpuinfo:
      for line in cpuinfo:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return 'unknown CPU'
