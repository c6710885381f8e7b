"""aic as an `onnx.backend.base.Backend`: `prepare` compiles, `run` executes.

from aic.onnx_backend import AicBackend
rep = AicBackend.prepare(model)          # compiled to native code
outputs = rep.run([x, y])                # a list in graph-input order, or a dict
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

import aic


class AicBackendRep(BackendRep):
    def __init__(self, module: aic.Module | aic.SpecializingModule) -> None:
        self.module = module

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        names = [i.name for i in self.module.inputs]
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(arrays) != len(names):
                raise ValueError(f"the model takes {len(names)} inputs ({names}), got {len(arrays)}")
            feeds = dict(zip(names, arrays))
        return tuple(self.module.run(None, feeds))


class AicBackend(Backend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> AicBackendRep:
        if not cls.supports_device(device):
            raise ValueError(f"aic's ONNX backend runs on the CPU, not {device}")
        return AicBackendRep(aic.compile(model, opt_level=kwargs.get("opt_level", 2)))

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("aic compiles whole models; wrap the node in a model and use run_model")
