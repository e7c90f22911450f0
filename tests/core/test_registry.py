"""Registries: decorator registration, duplicates, unknown names, entry points of installed packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import tl_traits as tt
from tl_traits.core.registry import (
    REGISTRIES,
    DuplicatePluginError,
    PluginLoadError,
    Registry,
    UnknownPluginError,
)


def test_four_registries_with_their_groups():
    assert {k: r.group for k, r in REGISTRIES.items()} == {
        "extractors": "tl_traits.extractors",
        "judges": "tl_traits.judges",
        "attacks": "tl_traits.attacks",
        "quantizers": "tl_traits.quantizers",
    }
    assert tt.extractors is REGISTRIES["extractors"]


def test_register_get_names_and_duplicates():
    reg: Registry = Registry("widgets")

    @reg.register("shout")
    def shout(questions, responses):
        return [100.0 if r.isupper() else 0.0 for r in responses]

    assert reg.get("shout") is shout and "shout" in reg and reg.names() == ["shout"]
    reg.register("shout", obj=shout)  # the same object again is harmless
    with pytest.raises(DuplicatePluginError, match="widgets plugin 'shout' is already registered by .*shout"):
        reg.register("shout", obj=lambda q, r: r)
    assert reg.sources()["shout"].origin == "decorator"


def test_unknown_name_lists_the_known_ones():
    reg: Registry = Registry("widgets")  # a group with no installed entry points
    reg.register("alpha", obj=object())
    reg.register("beta", obj=object())
    with pytest.raises(UnknownPluginError) as info:
        reg.get("alfa")
    message = str(info.value)
    assert "unknown widget 'alfa'" in message
    assert "Known widgets: alpha, beta." in message
    assert "tl_traits.widgets" in message


PLUGIN_PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tl-traits-throwaway-plugin"
        version = "0.0.1"

        [project.entry-points."tl_traits.judges"]
        exclaim = "throwaway_plugin:exclaim"
        broken = "throwaway_plugin.missing:thing"

        [tool.setuptools]
        packages = ["throwaway_plugin"]
    """,
    "throwaway_plugin/__init__.py": """
        def exclaim(questions, responses):
            return [min(100.0, 20.0 * r.count("!")) for r in responses]
    """,
}


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """Build and install a real distribution with entry points into a temp target folder."""
    src = tmp_path_factory.mktemp("plugin_src")
    for rel, text in PLUGIN_PACKAGE.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text))
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("throwaway_plugin", None)


def test_builtin_extractors_come_from_entry_points():
    sources = Registry("extractors").sources()
    assert {"mean_diff", "probe", "gradient", "pca_diff", "pca_center", "random_baseline"} <= set(sources)
    assert sources["probe"].distribution.startswith("tl-traits ")
    assert sources["probe"].target == "tl_traits.plugins.extractors.probe:probe"


def test_entry_point_plugin_is_discovered_lazily(installed_plugin):
    reg: Registry = Registry("judges")
    assert "exclaim" in reg.names() and "broken" in reg.names()
    assert "throwaway_plugin" not in sys.modules  # listing imports nothing
    source = reg.sources()["exclaim"]
    assert source.distribution == "tl-traits-throwaway-plugin 0.0.1"
    judge = reg.get("exclaim")
    assert judge(["q"], ["wow!!", "meh"]) == [40.0, 0.0]
    assert "throwaway_plugin" in sys.modules


def test_broken_plugin_names_itself_and_spares_the_rest(installed_plugin):
    reg: Registry = Registry("judges")
    with pytest.raises(PluginLoadError, match="'broken' from tl-traits-throwaway-plugin 0.0.1 failed to import"):
        reg.get("broken")
    assert reg.get("exclaim")(["q"], ["!"]) == [20.0]
    assert set(reg.load_all()) == {"broken"}
    other: Registry = Registry("extractors")
    assert "broken" not in other.names()


def test_decorator_name_clashing_with_an_entry_point_is_refused(installed_plugin):
    reg: Registry = Registry("judges")
    with pytest.raises(DuplicatePluginError, match="'exclaim' is already provided by tl-traits-throwaway-plugin"):
        reg.register("exclaim", obj=lambda q, r: [0.0] * len(r))
    assert reg.get("exclaim")(["q"], ["!!"]) == [40.0]


def test_builtin_plugin_folders_import_under_the_package_name():
    import importlib
    from pathlib import Path

    for kind in REGISTRIES:
        module = importlib.import_module(f"tl_traits.plugins.{kind}")
        assert Path(module.__file__).parent.parts[-2:] == ("plugins", kind)


# -- the plugin contracts (tl_traits.core.protocols) ------------------------------------------------
def test_every_builtin_plugin_fits_its_contract():
    import inspect

    from tl_traits.core import protocols
    from tl_traits.core.registry import attacks, extractors, judges, quantizers

    for name in extractors.names():
        fit = extractors.get(name)
        trained = "trained" in extractors.info(name).kinds  # trains through the model (protocols.TrainedExtractor)
        assert isinstance(fit, protocols.TrainedExtractor if trained else protocols.Extractor), name
        params = inspect.signature(fit).parameters
        first = ["model", "dataset"] if trained else ["pos", "neg"]
        assert list(params)[:2] == first and params["seed"].kind is inspect.Parameter.KEYWORD_ONLY, name
    for name in attacks.names():
        assert isinstance(attacks.get(name)(), protocols.Attack), name
    for name in quantizers.names():
        assert isinstance(quantizers.get(name), protocols.Quantizer), name
    for name in ("vader", "refusal"):  # the judges that need no model
        assert isinstance(judges.get(name)(), protocols.Judge), name


def test_a_plugin_missing_its_method_does_not_fit():
    from tl_traits.core import protocols

    class NoApply:
        name = "broken"

    class NoScore:
        name, kind, trait = "j", "trait", None

    assert not isinstance(NoApply(), protocols.Attack)
    assert not isinstance(NoScore(), protocols.Judge)
