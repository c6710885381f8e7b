"""TensorFlow frontend: SavedModel, frozen GraphDef, Keras file or object -> aic Graph."""

from .errors import TFFrontendError
from .loader import load_tensorflow
from .sources import INSTALL_HINT, TensorFlowModel, is_tensorflow_source

__all__ = ["INSTALL_HINT", "TFFrontendError", "TensorFlowModel", "is_tensorflow_source", "load_tensorflow"]
