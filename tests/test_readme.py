"""The README's Python blocks run as written (in order, in one namespace, in a fresh folder with
a ``structure.cif``), so its examples cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from xtalforge.crystal.examples import random_crystal
from xtalforge.io import write_cif

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    write_cif(random_crystal("P 1 21/c 1", 6, seed=3), tmp_path / "structure.cif")
    namespace: dict = {}
    for k, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)
    assert namespace["item"]["input"].ndim == 4 and len(namespace["stream"]) == 4096
