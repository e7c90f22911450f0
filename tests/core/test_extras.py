"""The slim install: a missing optional package is named with the one line that installs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tl_traits.core.errors import MissingExtraError
from tl_traits.core.extras import EXTRA_OF, require


@pytest.mark.parametrize(
    "module, extra", [("matplotlib.figure", "report"), ("sae_lens", "sae"), ("vaderSentiment.vaderSentiment", "judges")]
)
def test_a_missing_extra_names_the_line_that_installs_it(monkeypatch, module, extra):
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, module.split(".")[0], None)  # as if not installed
    with pytest.raises(
        MissingExtraError,
        match=rf"^this needs the optional package '{module.split('.')[0]}' \(the "
        rf"\[{extra}\] extra\): pip install 'tl_traits\[{extra}\]'$",
    ):
        require(module)


def test_other_import_errors_pass_through(monkeypatch):
    with pytest.raises(ModuleNotFoundError):
        require("no_such_package_anywhere")
    assert "no_such_package_anywhere" not in EXTRA_OF


def test_a_judge_without_its_extra_fails_with_that_line(monkeypatch):
    import tl_traits as tt
    from tl_traits.plugins.judges import vader

    vader._analyzer.cache_clear()  # an earlier test may have built the analyzer already
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.delitem(sys.modules, "vaderSentiment.vaderSentiment", raising=False)
    try:
        with pytest.raises(MissingExtraError, match=r"tl_traits\[judges\]"):
            tt.make_judge("vader")
    finally:
        vader._analyzer.cache_clear()


def test_importing_tl_traits_needs_no_extra():
    """`import tl_traits` and the core modules load with every extra's package hidden (a fresh interpreter)."""
    hidden = sorted(EXTRA_OF)
    code = (
        "import sys\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        "import tl_traits, tl_traits.core.capture, tl_traits.extraction.extract, tl_traits.steering.steer\n"
        "import tl_traits.interop.gguf_control_vectors, tl_traits.app.cli\n"
        "from tl_traits.core.errors import MissingExtraError\n"
        "try:\n    import tl_traits.extraction.figures\nexcept MissingExtraError as e:\n    print('FIGURES', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FIGURES this needs the optional package 'matplotlib' (the [report] extra)" in out.stdout


def test_plugins_lists_a_judge_without_its_extra_as_not_available(monkeypatch):
    from tl_traits.app.cli.plugins import describe
    from tl_traits.core.registry import extractors, judges

    assert describe(judges, "vader")["available"]
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "sae_lens", None)
    vader = describe(judges, "vader")
    assert not vader["available"] and vader["why"] == "needs 'vaderSentiment': pip install 'tl_traits[judges]'"
    assert describe(extractors, "sae")["why"] == "needs 'sae_lens': pip install 'tl_traits[sae]'"
    assert describe(judges, "refusal")["available"]  # a judge with no optional package is unaffected


def test_a_command_that_needs_several_extras_names_them_all_at_once(monkeypatch, capsys):
    from tl_traits.app.cli import main

    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as done:
        main(["run", "--limit", "2", "--out", "never-written"])
    assert done.value.code == 2
    assert capsys.readouterr().err == (
        "error: this needs the optional packages 'vaderSentiment', 'matplotlib': "
        "pip install 'tl_traits[judges,report]'\n"
    )
