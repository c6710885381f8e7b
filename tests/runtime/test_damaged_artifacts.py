"""Damaged model files are refused at load with a ModelLoadError naming the file, before any
of their code is mapped: truncated, modified, with edited or corrupted metadata."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from aic.codegen.llvm import compile_program
from aic.codegen.target import Target
from aic.runtime.artifact import SEAL, seal
from aic.runtime.module import ModelLoadError, load
from aic.runtime.package import package_program

from tests.runtime.test_artifact import expected, feeds, sample_program


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    program = sample_program()
    target = Target.parse("llvm")
    return package_program(program, compile_program(program, target, 2).object, target,
                           tmp_path_factory.mktemp("damaged") / "model.so")  # fmt: skip


def copy(model_path: Path, tmp_path: Path, name: str = "copy.so") -> Path:
    path = tmp_path / name
    shutil.copyfile(model_path, path)
    return path


def unsealed(path: Path) -> bytes:
    return path.read_bytes()[: -SEAL.size]


def test_an_intact_model_loads_and_runs(model_path):
    rng = np.random.default_rng(0)
    f = feeds(rng)
    with load(model_path) as m:
        np.testing.assert_allclose(m.run(None, f)[0].ravel(), expected(f["m.x"], f["m.ids"]), rtol=1e-6)


@pytest.mark.parametrize("keep", [0.5, 0.9, -SEAL.size - 1, -10, -1])
def test_truncated_files_are_refused(model_path, tmp_path, keep):
    data = model_path.read_bytes()
    path = tmp_path / "truncated.so"
    path.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    with pytest.raises(ModelLoadError, match=rf"{re.escape(str(path))}: (truncated|damaged)"):
        load(path)


def test_a_modified_byte_is_refused(model_path, tmp_path):
    path = copy(model_path, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match the seal"):
        load(path)


def test_an_unsealed_model_loads_when_its_elf_data_is_whole(model_path, tmp_path):
    path = tmp_path / "unsealed.so"
    path.write_bytes(unsealed(model_path))
    load(path).close()
    path.write_bytes(unsealed(model_path) + b"\0" * 7)
    with pytest.raises(ModelLoadError, match="7 unexpected bytes after the ELF data"):
        load(path)


def rewrite_metadata(model_path: Path, tmp_path: Path, edit) -> Path:
    """A copy whose metadata JSON is edited in place (same length) and sealed again."""
    with load(model_path) as m:
        text = json.dumps(m.metadata, sort_keys=True)
    data = unsealed(model_path)
    new = edit(text).encode()
    assert len(new) == len(text) and data.count(text.encode()) == 1
    path = tmp_path / "edited.so"
    path.write_bytes(data.replace(text.encode(), new))
    seal(path)
    return path


def test_metadata_disagreeing_with_the_c_tables_is_refused(model_path, tmp_path):
    def bigger_output(text: str) -> str:
        head, outputs = text.split('"outputs": ', 1)
        return head + '"outputs": ' + re.sub(r'"shape": \[(\d)', lambda m: f'"shape": [{(int(m[1]) + 1) % 10}',
                                             outputs, count=1)  # fmt: skip

    path = rewrite_metadata(model_path, tmp_path, bigger_output)
    with pytest.raises(ModelLoadError, match=r"output 0: the metadata says .* the model's tables .* modified"):
        load(path)


def test_corrupted_metadata_is_refused(model_path, tmp_path):
    path = rewrite_metadata(model_path, tmp_path, lambda text: "#" + text[1:])
    with pytest.raises(ModelLoadError, match=rf"{re.escape(str(path))}: damaged metadata"):
        load(path)
