"""mkdocs hook: pages include sections of the README and BENCHMARKS.md (``--8<-- "FILE:name"``
lines; sections are marked in the file by ``<!-- --8<-- [start:name] -->`` … ``[end:name]``), so
the site shows the very text the repository does. Their links are relative to the repository
root; on the site ``docs/x`` becomes ``x`` and ``BENCHMARKS.md`` the benchmark page, relative to
each page's folder. A missing file or section fails the build."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$', re.MULTILINE)


def _section(match: re.Match) -> str:
    path = ROOT / match.group(1)
    text = path.read_text(encoding="utf-8")
    name = match.group(2)
    if name is None:
        return text
    start, end = f"<!-- --8<-- [start:{name}] -->", f"<!-- --8<-- [end:{name}] -->"
    if start not in text or end not in text:
        raise ValueError(f"{path}: no section {name!r} (markers {start} … {end})")
    return text.split(start, 1)[1].split(end, 1)[0]


def on_page_markdown(markdown: str, page, **_: object) -> str:
    markdown = _INCLUDE.sub(_section, markdown)
    up = "../" * page.file.src_uri.count("/")
    markdown = re.sub(r"\]\(docs/", f"]({up}", markdown)
    return re.sub(r"\]\(BENCHMARKS\.md\)", f"]({up}workflows/benchmark.md)", markdown)
