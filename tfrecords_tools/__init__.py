"""Raw dataset layouts -> DaTaSeg tf.Example shards."""
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import  # Before TensorFlow.
