"""The documentation's examples run as written.

Every block of README.md fenced as ``python`` is run, and every ``python`` block of ``docs/*.md``
whose fence is directly preceded by the line ``<!-- test: run -->``. Each runs in a fresh
interpreter (``sys.executable``) in a temporary directory, offline, importing the same fastalign
as this test process; a block passes when it exits 0, so an exception, a failed assertion or a
name that no longer exists fails it. Examples that need a model build the tiny offline Qwen2 of
``fastalign.testing``.

So that a block cannot escape by its fence, every fence in the README and the docs must name its
language, and a ``<!-- test: run -->`` marker must sit on a ``python`` block. The last tests run
the same extraction and runner on a broken example and check that it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import fastalign

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
RUN_MARKER = "<!-- test: run -->"
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marked: bool  # the line before the fence is RUN_MARKER

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}" if self.path.is_relative_to(ROOT) else self.path.name


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (fences at the start of a line, CommonMark's
    rule for closing: the same character, at least as many, nothing after)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: unclosed code fence")
        marked = start > 0 and lines[start - 1].strip() == RUN_MARKER
        lang = m["info"].strip().split(" ")[0] if m["info"].strip() else ""
        blocks.append(Block(path, start + 1, lang, "\n".join(lines[start + 1 : i]) + "\n", marked))
        i += 1
    return blocks


def runnable(path: Path) -> list[Block]:
    """README: every python block; docs pages: the python blocks marked to run."""
    return [b for b in code_blocks(path) if b.lang == "python" and (path == README or b.marked)]


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run one block in a fresh interpreter, offline, with the fastalign this process imported."""
    package_root = str(Path(fastalign.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        TRL_EXPERIMENTAL_SILENCE="1",
        WANDB_MODE="disabled",
    )
    script = cwd / "example.py"
    script.write_text(block.code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def _failure(block: Block, proc: subprocess.CompletedProcess) -> str:
    out, err = proc.stdout[-3000:], proc.stderr[-6000:]
    return f"{block.id} exited with {proc.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"


EXAMPLES = [b for path in (README, *DOCS) for b in runnable(path)]


def test_the_readme_and_the_docs_have_examples_to_run():
    assert [b for b in EXAMPLES if b.path == README], "README.md has no ```python block"
    assert len([b for b in EXAMPLES if b.path != README]) >= 5, "docs/ lost its runnable examples"


def test_the_readme_opens_with_the_two_commands():
    """CI and newcomers start from these two lines (.ci/run runs scripts/test.sh)."""
    first = code_blocks(README)[0]
    assert first.line == 3 and first.lang == "bash"
    assert [line.split("#")[0].strip() for line in first.code.splitlines()] == [
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
    ]


def test_the_readme_links_resolve():
    """The README is read on its own (GitHub, the package page): its relative links must exist."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [t for t in targets if "://" not in t]
    assert local and not [t for t in local if not (ROOT / t).exists()]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_names_its_language(path):
    blocks = code_blocks(path)
    untagged = [b.line for b in blocks if not b.lang]
    assert not untagged, f"{path.name}: code fences without a language at lines {untagged}"
    misplaced = [b.line for b in blocks if b.marked and b.lang != "python"]
    assert not misplaced, f"{path.name}: {RUN_MARKER} on a block that is not python, at lines {misplaced}"
    text = path.read_text(encoding="utf-8").splitlines()
    markers = [i + 1 for i, line in enumerate(text) if line.strip() == RUN_MARKER]
    assert len(markers) == len([b for b in blocks if b.marked]), f"{path.name}: a {RUN_MARKER} not followed by a fence"


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.id)
def test_example_runs(block, tmp_path):
    proc = run_block(block, tmp_path)
    assert proc.returncode == 0, _failure(block, proc)


BROKEN_PAGE = """\
# A page

<!-- test: run -->
```python
import numpy as np
from fastalign.advantages import grpo_advantages

grpo_advantages(np.zeros(8, dtype=np.float32), num_generations=4)
print(renamed_function())   # a name that no longer exists
```

```python
raise SystemExit("not marked: never run")
```
"""


def test_a_broken_example_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(BROKEN_PAGE, encoding="utf-8")
    blocks = code_blocks(page)
    assert [(b.line, b.lang, b.marked) for b in blocks] == [(4, "python", True), (12, "python", False)]
    (marked,) = [b for b in blocks if b.marked]
    proc = run_block(marked, tmp_path)
    assert proc.returncode != 0
    assert "NameError: name 'renamed_function' is not defined" in proc.stderr


def test_a_failed_assertion_fails(tmp_path):
    block = Block(tmp_path / "page.md", 1, "python", "import fastalign\nassert fastalign.__version__ == 'x'\n", True)
    proc = run_block(block, tmp_path)
    assert proc.returncode != 0 and "AssertionError" in proc.stderr
