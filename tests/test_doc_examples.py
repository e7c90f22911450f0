"""Every code block in README.md and docs/*.md runs as written (small), or says why it cannot.

A page's blocks run in order in one fresh Python process, in one namespace that starts with
`import tl_traits as tt` and `model = tt.load_model()`; bash blocks run there (`tl-traits` on PATH).
Small: TL_TRAITS_LIMIT=4 (trait sets and prompt sets cut to 4 items), and TL_TRAITS_MODEL points the
default model at a random model of the embedded one's shape but 64 wide (its 30 layers, tokenizer and
chat template), so every layer a page names exists and a forward costs a tenth as much. This checks
that the examples run, not what they print: the real model's figures are in docs/benchmarks.md.
Markers, on the line before a fence:
  <!-- docs-test: skip: the reason -->        the block cannot run here (a cluster, a server, llama-cli)
  <!-- docs-test: shrink: A => B; C => D -->  the block runs with text A replaced by B (a smaller number)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```\s*$", re.S | re.M)
MARKER = re.compile(r"<!-- docs-test: (?P<kind>skip|shrink): (?P<what>.*?) -->\s*$")
RUNNABLE, DATA, TEXT = {"python", "bash"}, {"toml", "json"}, {"text"}
SMALL = "4"  # TL_TRAITS_LIMIT for the run: every trait set, prompt set and instruction set cut to 4 items
PRELUDE = "import tl_traits as tt\nmodel = tt.load_model()\n"
PAGE_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None
    shrink: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    def runnable_code(self) -> str:
        code = self.code
        for old, new in self.shrink:
            assert old in code, f"{self.where}: shrink marker names {old!r}, which the block does not hold"
            code = code.replace(old, new)
        return code


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        skip = marker["what"].strip() if marker and marker["kind"] == "skip" else None
        shrink = ()
        if marker and marker["kind"] == "shrink":
            shrink = tuple(tuple(part.strip() for part in pair.split("=>", 1)) for pair in marker["what"].split(";"))
        found.append(Block(page, text[: m.start()].count("\n") + 1, m["lang"], m["code"], skip, shrink))
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def test_every_block_says_what_it_is() -> None:
    """A fence names its language; a skipped block gives a reason; a shrink marker names text the block holds."""
    unnamed = [b.where for b in ALL if b.lang not in RUNNABLE | DATA | TEXT]
    assert not unnamed, f"these fences need a language (python, bash, toml, json, or text for a diagram): {unnamed}"
    vague = [b.where for b in ALL if b.skip is not None and len(b.skip) < 12]
    assert not vague, f"a skipped block must say why it cannot run here: {vague}"
    for b in ALL:
        b.runnable_code()


def test_data_blocks_parse() -> None:
    for b in ALL:
        if b.lang == "toml":
            tomllib.loads(b.code)
        elif b.lang == "json":
            json.loads(b.code)


def test_plugin_entry_point_groups_are_ones_a_registry_reads() -> None:
    import tl_traits as tt

    read = {registry.group for registry in (tt.extractors, tt.judges)}
    groups = [
        g for b in ALL if b.lang == "toml" for g in tomllib.loads(b.code).get("project", {}).get("entry-points", {})
    ]
    assert groups and set(groups) <= read, (groups, read)


def commands(code: str) -> list[str]:
    """A bash block's commands: one per line, backslash continuations joined."""
    return [c.strip() for c in code.replace("\\\n", " ").splitlines() if c.strip() and not c.lstrip().startswith("#")]


# `tl-traits ...` (and `a && b` chains of them) run in the driver's process through the script's own entry
# (`run_app`), which saves a Python start and a torch import per command; any other command runs in bash.
RUN_COMMAND = """
def run_command(command):
    words = shlex.split(command, comments=True)
    parts, part = [], []
    for word in words + ["&&"]:
        if word == "&&":
            parts.append(part)
            part = []
        else:
            part.append(word)
    if not all(p and p[0] == "tl-traits" for p in parts):
        return subprocess.run(["bash", "-euo", "pipefail", "-c", command], stdin=subprocess.DEVNULL).returncode
    from tl_traits.app.cli import app, run_app
    for p in parts:
        code = run_app(app, p[1:])
        if code:
            return code
    return 0
"""


def _driver(page: Path) -> str:
    """A script that runs the page's runnable blocks in order, timing each step and naming
    it (page:line) in a failure."""
    steps = [b for b in blocks(page) if b.lang in RUNNABLE and b.skip is None]
    head = [
        "import shlex, subprocess, sys, time",
        "def timed(where, t0): print(f'--- {where}: {time.perf_counter() - t0:.1f} s', flush=True)",
        RUN_COMMAND,
    ]
    lines = ["ns = {}", f"exec(compile({PRELUDE!r}, 'prelude', 'exec'), ns)"]
    for b in steps:
        if b.lang == "python":
            lines += [
                "t0 = time.perf_counter()",
                f"exec(compile({b.runnable_code()!r}, {b.where!r}, 'exec'), ns)",
                f"timed({b.where!r}, t0)",
            ]
            continue
        for command in commands(b.runnable_code()):
            lines += [
                "t0 = time.perf_counter()",
                f"code = run_command({command!r})",
                f"sys.exit({b.where + ': '!r} + {command!r} + f' exited with {{code}}') if code else None",
                f"timed({b.where + ' ' + command[:60]!r}, t0)",
            ]
    # multiprocessing's spawn re-imports the main module in each worker: the page must run only in the parent
    return "\n".join(head + ["if __name__ == '__main__':"] + ["    " + line for line in lines]) + "\n"


RUN_PAGES = [p for p in PAGES if any(b.lang in RUNNABLE and b.skip is None for b in blocks(p))]


@pytest.fixture(scope="session")
def narrow_model(tmp_path_factory) -> Path:
    """A randomly initialised model shaped like the embedded SmolLM2 (30 layers, its tokenizer) but 64 wide."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tl_traits.core.embedded import embedded_model_folder

    source = embedded_model_folder()
    config = AutoConfig.from_pretrained(source)
    config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
        }
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "SmolLM2-narrow-random"
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_runs_as_written(page: Path, tmp_path: Path, narrow_model: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(_driver(page))
    env = {
        **os.environ,
        "TL_TRAITS_LIMIT": SMALL,
        "TL_TRAITS_MODEL": str(narrow_model),
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = run.communicate(timeout=PAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # the page's tl-traits children and their workers too
        out, err = run.communicate()
        run.returncode = -signal.SIGKILL
    timings = "\n".join(line for line in out.splitlines() if line.startswith("--- "))
    print(timings)
    if run.returncode == -signal.SIGKILL:
        pytest.fail(f"{page.relative_to(REPO)}: the examples ran past {PAGE_TIMEOUT_S} s\n{timings}")
    assert run.returncode == 0, f"{page.relative_to(REPO)}: an example failed as written\n{timings}\n{err[-6000:]}"


WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}


def test_counts_in_the_docs_match_the_code() -> None:
    """ "seven judges", "six methods plus `sae`", "four bundled trait sets": each count is what the registries hold."""
    import tl_traits as tt

    expected = {
        r"\b(\w+) judges\b": len(tt.judges.names()),
        r"\b(\w+) methods plus `sae`": len([n for n in tt.extractors.names() if n != "sae"]),
        r"\b(\w+) bundled trait sets\b": len(tt.list_traits()),
    }
    wrong = []
    for page in PAGES:
        for pattern, count in expected.items():
            for m in re.finditer(pattern, page.read_text(encoding="utf-8"), re.I):
                said = WORDS.get(m[1].lower())
                if said is not None and said != count:
                    wrong.append(f"{page.relative_to(REPO)}: '{m[0]}' but the code has {count}")
    assert not wrong, wrong
