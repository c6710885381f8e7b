"""`aic report`: one self-contained HTML file, rendered in headless Chromium and checked on its DOM."""

from __future__ import annotations

import json
import re

import onnx

from aic.cli import main
from aic.report import render, report_data

from .browser import headless
from .models import mlp


def element(dom: str, tag: str, ident: str) -> str:
    """The markup of the <tag id=ident> element (no nesting of the same tag inside)."""
    start = dom.index(f'<{tag} id="{ident}"')
    return dom[start : dom.index(f"</{tag}>", start)]


def test_report_renders_in_chromium(tmp_path, capsys):
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp(), model)
    page = tmp_path / "report.html"
    assert main(["report", str(model), "-o", str(page), "--runs", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # self-contained: nothing fetched
    dom = headless("--dump-dom", page.as_uri()).stdout
    assert 'data-rendered="yes"' in dom  # the script ran to its end
    assert '<p class="ok" id="check-verdict">PASSED</p>' in dom
    before = element(dom, "svg", "graph-before")
    assert before.count('class="node') == 6 + 2  # six nodes, the input and the output
    after = element(dom, "svg", "graph-after")
    assert after.count('class="group"') == 3
    assert ">k0 MatMul+Add+Relu<" in after and ">k2 MatMul<" in after
    assert "outside them" in element(dom, "div", "kernel-summary")  # each run's kernel and other time
    kernels = element(dom, "table", "kernels")
    assert kernels.count("<tr>") == 1 + 3  # header and one row per kernel call
    assert "k1_matmul_relu" in kernels
    assert element(dom, "svg", "roofline").count('class="kernel-point"') == 3
    memory = element(dom, "svg", "memory")
    data = json.loads(re.search(r'<script type="application/json" id="aic-data">(.*?)</script>', text, re.S)[1])
    assert memory.count('class="buffer"') == len(data["memory"]["buffers"]) > 0
    assert 'id="occupancy"' in memory


def test_report_data_without_check(tmp_path):
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp(), model)
    data = report_data(model, runs=2, run_check=False)
    assert data["check"] is None and data["model"] == str(model)
    assert 0 < data["profile"]["outside_seconds"] < data["profile"]["run_seconds"]
    assert [g["label"] for g in data["graphs"]["after"]["groups"]] == ["MatMul+Add+Relu", "MatMul+Relu", "MatMul"]
    assert len(data["kernels"]) == 3 and all(k["seconds"] > 0 for k in data["kernels"])
    page = render({**data, "model": "</script><b>"})
    embedded = page.split('id="aic-data">')[1].split("</script>")[0]
    assert json.loads(embedded)["model"] == "</script><b>"  # escaped inside the script element
