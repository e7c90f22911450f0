"""One plugin contract: PluginInfo records, Registry.resolve for every kind, listing without importing plugins."""

from __future__ import annotations

import importlib
import inspect
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import tl_traits as tt
from tl_traits.core.plugin_info import PluginInfo, declared_info
from tl_traits.core.registry import (
    REGISTRIES,
    DuplicatePluginError,
    PluginLoadError,
    PluginOptionError,
    Registry,
    UnknownPluginError,
)
from tl_traits.judging.judges import JudgeError

REPO = Path(__file__).resolve().parents[2]


def _pyproject_entry_points() -> dict[str, dict[str, str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]


# -- the record --------------------------------------------------------------------------------------
def test_a_record_is_frozen_and_attaches_as_a_decorator():
    info = PluginInfo("shout", "loud text scores high", requires=["numpy"], context=("model",))
    assert info.requires == ("numpy",)  # lists are kept as tuples: the record stays hashable
    with pytest.raises(AttributeError):
        info.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="tuple of names, not the string 'numpy'"):
        PluginInfo("x", requires="numpy")  # type: ignore[arg-type]

    @info
    def shout(questions, responses):
        return [0.0] * len(responses)

    assert shout.plugin_info is info and declared_info(shout) is info

    class Parent:
        plugin_info = info

    class Child(Parent):  # a subclass is another plugin: it does not inherit its parent's record
        pass

    assert declared_info(Parent) is info and declared_info(Parent()) is info and declared_info(Child) is None


def test_legacy_attributes_are_read_with_a_deprecation_warning():
    reg: Registry = Registry("extractors", context=("layers",), call=("pos", "neg", "seed"))

    def old_style(pos, neg, *, seed=0):
        """old_style: the first positive. More prose."""
        return pos[0]

    old_style.by_default = False
    old_style.requires = ("sae_lens",)
    reg.register("old_style", obj=old_style)
    with pytest.warns(DeprecationWarning, match="sets by_default, requires as attributes; declare them"):
        info = reg.info("old_style")
    assert (info.by_default, info.requires, info.description) == (False, ("sae_lens",), "the first positive.")


# -- listing reads records, never the plugins ----------------------------------------------------------
LISTING = """
import json, sys, tomllib
from importlib import metadata

table = tomllib.loads(open(sys.argv[1]).read())["project"]["entry-points"]
real = metadata.entry_points

def entry_points(**selection):  # this checkout's pyproject, as a reinstall would publish it
    group = selection.get("group")
    if group in table:
        return metadata.EntryPoints(metadata.EntryPoint(n, v, group) for n, v in table[group].items())
    return real(**selection)

metadata.entry_points = entry_points
from tl_traits.core.registry import REGISTRIES
from tl_traits.extraction.extract import default_methods
from tl_traits.app.cli import main

methods = default_methods()
records = {kind: sorted(reg.infos()) for kind, reg in REGISTRIES.items()}
try:
    main(["plugins", "--json"])
except SystemExit:
    pass

def plugin_modules():
    return sorted(m for m in sys.modules if m.startswith("tl_traits.plugins.") and m.count(".") == 3
                  and not m.endswith(".catalogue"))

loaded = plugin_modules()
REGISTRIES["extractors"].get("mean_diff")
print(json.dumps({"methods": methods, "records": records, "loaded": loaded, "after_get": plugin_modules()}))
"""


def test_listing_and_default_methods_import_no_plugin():
    out = subprocess.run(
        [sys.executable, "-c", LISTING, str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []  # default_methods, every record and `tl-traits plugins`: no plugin module
    assert result["methods"] == ["mean_diff", "pca_center", "pca_diff", "probe", "random_baseline"]  # no alias
    assert result["records"]["quantizers"] == sorted(_pyproject_entry_points()["tl_traits.quantizers"])
    assert result["after_get"] == ["tl_traits.plugins.extractors.mean_diff"]  # imported on first use


@pytest.mark.parametrize(
    "group", ["tl_traits.extractors", "tl_traits.judges", "tl_traits.attacks", "tl_traits.quantizers"]
)
def test_every_builtin_entry_point_is_a_record_its_plugin_carries(group):
    """The records match the plugins: the same name, and the context and options their signatures take."""
    registry = REGISTRIES[group.split(".")[1]]
    for name, value in _pyproject_entry_points()[group].items():
        module, _, attribute = value.partition(":")
        assert module.endswith(".catalogue"), value
        record = getattr(importlib.import_module(module), attribute)
        assert isinstance(record, PluginInfo) and record.name == name and record.description
        target_module, _, target_attribute = record.target.partition(":")
        plugin = getattr(importlib.import_module(target_module), target_attribute)
        assert plugin.plugin_info is record, name
        if isinstance(plugin, tt.quantization.Quantizer):
            assert plugin.description == record.description and plugin.name == name
            continue
        params = inspect.signature(plugin).parameters
        named = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        assert set(record.context) == {k for k in named if k in registry.context}, name
        if record.options is not None:
            assert set(record.options) == {k for k in named if k not in registry.context + registry.call}, name
        if record.kinds:  # a judge class states its kinds too; a trained extractor function only in its record
            assert getattr(plugin, "kinds", record.kinds) == record.kinds, name


def test_a_record_registered_alone_imports_its_target_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "lazy_fit_plugin.py").write_text(
        textwrap.dedent("""
        def fit(pos, neg, *, seed=0, layers=None):
            return pos.mean(0) - neg.mean(0)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widgets", context=("layers",))
    record = PluginInfo(
        "lazy", "a mean difference", by_default=False, context=("layers",), options=(), target="lazy_fit_plugin:fit"
    )
    reg.register(obj=record)
    assert reg.names() == ["lazy"] and reg.info("lazy") is record and "lazy_fit_plugin" not in sys.modules
    assert reg.sources()["lazy"].target == "lazy_fit_plugin:fit"
    fit = reg.get("lazy")
    assert "lazy_fit_plugin" in sys.modules and reg.declared(fit) is record  # the record it was registered with
    with pytest.raises(DuplicatePluginError, match="'lazy' is already known"):
        reg.register(obj=PluginInfo("lazy", target="lazy_fit_plugin:other"))
    with pytest.raises(Exception, match="names no target"):
        reg.register(obj=PluginInfo("bare"))
    reg.register(obj=PluginInfo("missing", target="lazy_fit_plugin:nope"))
    with pytest.raises(PluginLoadError, match="'missing' .* failed to import \\(lazy_fit_plugin:nope\\)"):
        reg.get("missing")
    assert "missing" not in reg.infos() or reg.infos()["missing"].target == "lazy_fit_plugin:nope"


# -- resolve: a name, a class, an instance or a function, for every kind --------------------------------
def test_resolve_passes_only_the_declared_context_and_names_the_options():
    reg: Registry = Registry("widgets", context=("model", "trait"), call=("text",), ready=("score",))

    @PluginInfo("declared", context=("model",), options=("scale",))
    def declared(text, *, model=None, trait=None, scale=1.0):
        return (model, trait, scale)

    def undeclared(text, *, trait=None, extra=0):
        return (trait, extra)

    assert reg.resolve(declared, model="m", trait="t")("x") == ("m", None, 1.0)  # trait is not declared
    assert reg.resolve(undeclared, model="m", trait="t")("x") == ("t", 0)  # named in its signature
    assert reg.resolve(declared, options={"scale": 2}, model=None)("x") == (None, None, 2)  # None: not passed
    with pytest.raises(PluginOptionError, match="widget 'declared' takes no option 'size'; its options: scale"):
        reg.resolve(declared, options={"size": 1})
    with pytest.raises(PluginOptionError, match="text is passed when it is called"):
        reg.resolve(undeclared, options={"text": "x"})

    class DomainError(Exception):
        pass

    with pytest.raises(DomainError, match="widget 'declared' takes no option 'size'") as raised:
        reg.resolve(declared, options={"size": 1}, error=DomainError)
    assert isinstance(raised.value.__cause__, PluginOptionError)
    with pytest.raises(DomainError, match="takes no option 'size'"):
        reg.check_options(declared, {"size": 1}, error=DomainError)
    with pytest.raises(TypeError, match="widgets are given no context \\['layers'\\]"):
        reg.resolve(undeclared, layers=[1])
    with pytest.raises(PluginOptionError, match="declares context \\['hook'\\], which widgets are not given"):
        reg.resolve(PluginInfo("odd", context=("hook",))(lambda text: text))

    class Built:
        def score(self, text):
            return 1.0

    built = Built()
    assert reg.resolve(built, model="m") is built
    with pytest.raises(PluginOptionError, match="cannot apply to a widget instance that is already built"):
        reg.resolve(built, options={"scale": 1})
    with pytest.raises(UnknownPluginError, match="unknown widget 'nope'.*register"):
        reg.resolve("nope")
    with pytest.raises(Exception, match="cannot use a int as a widget: pass a registered name"):
        reg.resolve(3)


def test_a_judge_from_a_name_a_class_an_instance_and_a_function(joy_trait):
    @PluginInfo("lengthy", "longer is more", kinds=("trait",), context=("trait",), options=("kind", "cap"))
    class Lengthy(tt.judging.JudgeBase):
        name = "lengthy"

        def __init__(self, *, trait=None, kind="trait", cap=100):
            self.trait, self.kind, self.cap = trait.name if trait is not None else None, kind, cap

        def _score(self, questions, responses):
            return [min(self.cap, len(r)) for r in responses]

    from_class = tt.make_judge(Lengthy, trait=joy_trait, cap=5)
    assert from_class.trait == joy_trait.name and from_class.score(["q"], ["abcdefgh"]) == [5.0]
    assert tt.make_judge(from_class) is from_class
    with pytest.raises(JudgeError, match="judge 'lengthy' takes no option 'size'; its options: kind, cap"):
        tt.make_judge(Lengthy, size=3)

    def by_model(questions, responses, *, model=None):  # a function may take context too
        return [100.0 if model == "m" else 0.0 for _ in responses]

    judge = tt.make_judge(by_model, model="m")
    assert judge.name == "by_model" and judge.score(["q"], ["a"]) == [100.0]
    tt.judges.register("lengthy_test", obj=Lengthy)
    try:
        assert tt.make_judge("lengthy_test", cap=2).score(["q"], ["abc"]) == [2.0]
    finally:
        tt.judges.unregister("lengthy_test")


@pytest.fixture(scope="module")
def joy_trait():
    return tt.load_trait("emotion/joy").limit(4)


def test_an_attack_from_a_class_an_instance_and_a_function():
    from tl_traits.training.poisoning import PoisonError, poison, resolve_attack

    rows = [{"prompt": f"p{i}", "response": "r"} for i in range(4)]

    def shout(example, rng, *, suffix="!"):
        return {**example, "response": example["response"].upper() + suffix}

    made = poison(rows, shout, 0.5, seed=0, suffix="!!")
    assert made.attack == "shout" and sorted(r["response"] for r in made) == ["R!!", "R!!", "r", "r"]
    with pytest.raises(PoisonError, match="attack 'shout' takes no option 'sufix'; its options: suffix"):
        poison(rows, shout, 0.5, sufix="?")
    trigger_cls = tt.attacks.get("trigger")
    assert resolve_attack(trigger_cls, trigger="zz").trigger == "zz"
    ready = resolve_attack("trigger", trigger="zz")
    assert resolve_attack(ready) is ready
    assert ready.apply({"prompt": "hi", "response": "ok"}, random.Random(0))["prompt"] == "zz hi"


def test_a_quantizer_from_a_name_an_instance_and_a_function():
    from tl_traits.quantization.quantizer import QuantizationError, quantization_info, resolve_quantizer

    int8 = resolve_quantizer("int8")
    assert resolve_quantizer(int8) is int8

    def halve(model, *, factor=0.5):
        """halve: every weight times a factor."""
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(factor)
        return model

    q = resolve_quantizer(halve)
    assert (q.name, q.description) == ("halve", "every weight times a factor.")
    layer = torch.nn.Linear(2, 2)
    out = q.quantize(layer, factor=0.25)
    torch.testing.assert_close(out.weight, layer.weight * 0.25)
    assert quantization_info(out)["backend"] == "halve"
    with pytest.raises(QuantizationError, match="options \\['bits'\\] cannot apply"):
        resolve_quantizer("int8", bits=4)


def test_extract_takes_a_declared_function_a_class_and_an_instance(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(25)  # 5 held out per class
    acts = tt.capture(bridge_model, trait, layers=[3, 12], position="response[:]", progress=False)
    seen = {}

    @PluginInfo("recorded", context=("layers", "record"), options=("scale",))
    def recorded(pos, neg, *, seed=0, layers=None, record=None, hook=None, scale=1.0):
        seen["hook"], seen["layers"] = hook, layers  # hook is not declared: never passed
        record["scale"] = scale
        return pos.mean(0) - neg.mean(0)

    class Centroid:  # a class: built with its options, then called as a fit
        def __init__(self, *, sign=1.0):
            self.sign = sign

        def __call__(self, pos, neg, *, seed=0):
            return self.sign * (pos.mean(0) - neg.mean(0))

    vecs = tt.extract(
        bridge_model,
        trait,
        [recorded, Centroid],
        activations=acts,
        progress=False,
        method_options={"recorded": {"scale": 3.0}, "Centroid": {"sign": -1.0}},
    )
    assert vecs.methods == ["recorded", "Centroid"]
    assert seen == {"hook": None, "layers": [3, 12]} and vecs["recorded"].metadata["scale"] == 3.0
    torch.testing.assert_close(vecs["Centroid"].directions, -vecs["recorded"].directions)
    flipped = tt.extract(bridge_model, trait, Centroid(sign=-1.0), activations=acts, progress=False)  # an instance
    torch.testing.assert_close(flipped["Centroid"].directions, vecs["Centroid"].directions)
    with pytest.raises(tt.TlTraitsError, match="extractor 'recorded' takes no option 'scal'; its options: scale"):
        tt.extract(bridge_model, trait, [recorded], activations=acts, method_options={"recorded": {"scal": 1}})
