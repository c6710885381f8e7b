"""aic: an ahead-of-time deep-learning compiler.

Each top-level folder is one layer of the compiler and installs as `aic.<layer>`.
"""

from setuptools import setup

LAYERS = ["ir", "frontend", "compiler", "codegen", "runtime"]
SUBPACKAGES = {
    "ir": ["ops"],
    "frontend": ["onnx", "tensorflow"],
    "compiler": ["passes", "lower"],
    "codegen": [],
    "runtime": [],
}


def packages() -> tuple[list[str], dict[str, str]]:
    names, dirs = ["aic"], {"aic": "aic"}
    for layer in LAYERS:
        names.append(f"aic.{layer}")
        dirs[f"aic.{layer}"] = layer
        for sub in SUBPACKAGES[layer]:
            names.append(f"aic.{layer}.{sub}")
            dirs[f"aic.{layer}.{sub}"] = f"{layer}/{sub}"
    return names, dirs


NAMES, DIRS = packages()

setup(
    name="aic",
    version="0.1.0",
    description="Ahead-of-time deep-learning compiler: ONNX and TensorFlow to one native shared object",
    python_requires=">=3.11",
    packages=NAMES,
    package_dir=DIRS,
    package_data={"aic.runtime": ["*.c", "*.h"], "aic": ["*.html"]},
    install_requires=["numpy>=1.26", "onnx>=1.17", "llvmlite>=0.44", "ml_dtypes>=0.4", "rich>=13"],
    extras_require={
        "test": [
            "onnxruntime>=1.20",
            "pytest>=8",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "ruff>=0.6",
            "tensorboard>=2.14",
            "tensorflow-cpu>=2.16",
        ],
        "tf": ["tensorflow-cpu>=2.16"],
        "cuda": [  # NVRTC and CUDA headers for `--target cuda`; 13.0.x: the CUDA 13.0 driver rejects newer PTX
            "nvidia-cuda-nvrtc==13.0.*",
            "nvidia-cuda-runtime==13.0.*",
            "nvidia-cuda-crt==13.0.*",
            "nvidia-cuda-cccl==13.0.*",
        ],
        "bench": [
            "onnxruntime>=1.20", "torch==2.13.0", "torchvision==0.28.0", "transformers", "onnxscript",
            "openvino>=2024.0",
        ],
        "tensorboard": ["tensorboard>=2.14"],
    },
    entry_points={"console_scripts": ["aic=aic.cli:main"]},
)
