"""aic: an ahead-of-time deep-learning compiler.

Each top-level folder is one layer of the compiler and installs as `aic.<layer>`.
"""

from setuptools import setup

LAYERS = ["ir", "frontend", "compiler", "codegen", "runtime"]
SUBPACKAGES = {"ir": ["ops"], "frontend": ["onnx"], "compiler": ["passes", "lower"], "codegen": [], "runtime": []}


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
    description="Ahead-of-time deep-learning compiler: ONNX to one native shared object",
    python_requires=">=3.11",
    packages=NAMES,
    package_dir=DIRS,
    package_data={"aic.runtime": ["*.c", "*.h"]},
    install_requires=["numpy>=1.26", "onnx>=1.17", "llvmlite>=0.44", "ml_dtypes>=0.4"],
    extras_require={
        "test": ["onnxruntime>=1.20", "pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "ruff>=0.6"],
        "bench": ["onnxruntime>=1.20", "torch==2.13.0", "transformers", "onnxscript", "openvino"],
    },
    entry_points={"console_scripts": ["aic=aic.cli:main"]},
)
