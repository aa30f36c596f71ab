"""A readable console for the command-line tools: one-line errors, quiet library logs."""
import logging as std_logging
import sys
from typing import List, NoReturn

from absl import flags
from absl import logging


def fail(message: str) -> NoReturn:
  """Prints `error: message` on stderr and exits with status 2 (no stack trace)."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags_or_fail(argv: List[str]) -> List[str]:
  """absl flag parsing that reports a bad flag in one line naming the valid flags."""
  try:
    remaining = flags.FLAGS(argv)
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)  # --verbosity=0 brings INFO logs back.
    return remaining
  except flags.Error as e:
    own_flags = sorted(
        name for name, flag in flags.FLAGS._flags().items()  # pylint: disable=protected-access
        # absl names a script's own flags after argv[0] (the path as typed).
        if name == flag.name and flags.FLAGS.find_module_defining_flag(name) in (
            argv[0], argv[0].rsplit('/', 1)[-1].replace('.py', ''), '__main__',
            'official.common.flags'))
    message = str(e).replace('\n', ' ')
    fail(f'{message} Valid flags: {", ".join("--" + n for n in own_flags)}')


def quiet_logs() -> None:
  """Keeps progress and results on the console, not pages of library warnings."""
  for noisy in ('tensorflow', 'h5py', 'matplotlib', 'PIL'):
    std_logging.getLogger(noisy).setLevel(std_logging.ERROR)
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings('ignore')
