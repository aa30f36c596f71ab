"""DaTaSeg in TensorFlow (Model Garden style)."""
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import  # Before TensorFlow.
