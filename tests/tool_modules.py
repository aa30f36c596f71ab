"""Imports a script of `tools/` (not a package) as a module, for the tests of that tool."""
import importlib.util
import os
import types

TOOLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools')


def load_tool(name: str) -> types.ModuleType:
  """Executes `tools/<name>.py` and returns it as module `name`."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS_DIR, f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
