"""DaTaSeg in TensorFlow (Model Garden style)."""
# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import
