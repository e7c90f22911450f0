"""Fault injection over the importers: whatever file comes in, it imports correctly or raises our own error.

Random bytes, valid files cut short or with bytes flipped, and otherwise valid safetensors and GGUF
files with random tensor names, shapes and dtypes. An import that succeeds must hold every tensor
of the file once (the sum over the file equals the sum over the vector: duplicates summed, none
lost) at layers in range. Any exception that is not a `TlTraitsError` fails the test.
"""

from __future__ import annotations

import re
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as save_numpy

import tl_traits as tt
from tl_traits.app.cli.options import load_vector
from tl_traits.core.errors import TlTraitsError

from .conftest import write_gguf

N_LAYERS, D = 4, 6
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class StandIn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cfg = types.SimpleNamespace(model_name="stand-in", n_layers=N_LAYERS, d_model=D, dtype=torch.float32)
        self.weight = torch.nn.Parameter(torch.zeros(2))


MODEL = StandIn()

layers = st.integers(-N_LAYERS - 1, N_LAYERS)  # mostly in range, now and then one past either end
odd_names = st.one_of(
    st.text(max_size=12),
    st.builds(lambda n, hook: f"blocks.{n}.hook_{hook}", layers, st.sampled_from(["mlp_in", "attn.hook_z", "z"])),
    st.sampled_from(
        [
            "direction.١",
            "direction.²",
            "layer.²",
            "layer.1.2",
            "model.layers.2.mlp",
            "direction.x",
            "",
            "blocks.1.hook_",
        ]
    ),
)


def _names(prefixes: list[str]):
    """Mostly names that read as a layer (`prefix` + a layer, `-1` included), now and then an odd one."""
    valid = st.builds(
        lambda prefix, n: prefix.format(n) if "{" in prefix else f"{prefix}{n}", st.sampled_from(prefixes), layers
    )
    return _mostly(valid, odd_names)


def _mostly(good, odd):
    """`good` four times in five, `odd` the fifth (hypothesis would otherwise try each branch as often)."""
    return st.integers(0, 4).flatmap(lambda i: good if i else odd)


st_names = _names(
    ["", "layer.", "model.layers.", "direction.0", "blocks.{}.hook_resid_post", "blocks.{}.hook_attn_out"]
)
gguf_names = _names(["direction.", "direction.0", "direction.00"])


def _specs(float_dtypes: list, other_dtypes: list):
    """(shape, dtype, value) of one tensor: mostly one that can steer, now and then any shape, dtype or value."""
    good = st.tuples(
        st.sampled_from([(D,)] * 4 + [(1, D)]), st.sampled_from(float_dtypes), st.sampled_from([1.0, -2.5, 0.0])
    )
    odd = st.tuples(
        st.sampled_from([(D,), (2, 3), (D, 1), (), (0,), (D + 1,), (3, D)]),
        st.sampled_from(float_dtypes + other_dtypes),
        st.sampled_from([1.0, float("nan"), float("inf"), 1e39]),
    )
    return _mostly(good, odd)


st_specs = _specs([np.float32, np.float16, np.float64], [np.int32, np.uint8])
gguf_specs = _specs([np.float32], [np.float16, np.int32])


def _array(shape, dtype, value):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) + value
        return base.astype(dtype)


_UNSTEERED = re.compile(r"hook_(?!(resid_pre|resid_mid|resid_post|attn_out|mlp_out)$)|\.mlp$|^mlp\.|\.mlp\.")
_PLAIN = re.compile(r"^(?:|layer\.|model\.layers\.|direction\.|blocks\.)(-?[0-9]+)(?:\.hook_resid_post)?$")


def _check_import(load, tensors: dict[str, np.ndarray]) -> None:
    """`load()` imports all of `tensors` correctly (each read once at its layer, summed per
    layer) or raises our error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vec = load()
    except TlTraitsError:
        return
    assert all(0 <= layer < N_LAYERS for layer in vec.layers) and len(set(vec.layers)) == len(vec.layers)
    assert vec.directions.shape == (len(vec.layers), D) and bool(torch.isfinite(vec.directions).all())
    assert all(t.shape in ((D,), (1, D)) for t in tensors.values()), "a tensor of another shape was flattened"
    assert all(ch in "0123456789" for name in tensors for ch in name if ch.isdigit()), "a non-ASCII digit was read"
    assert not any(_UNSTEERED.search(name) for name in tensors), (
        "a name for a hook we do not steer was read as resid_post"
    )
    expected: dict[int, torch.Tensor] = {}
    for name, t in tensors.items():
        row = torch.from_numpy(np.asarray(t, dtype=np.float32)).reshape(-1)
        plain = _PLAIN.match(name)
        if plain:  # a name whose layer the test can tell: -1 is the last layer, 012 is 12
            layer = int(plain.group(1)) % N_LAYERS
            expected[layer] = expected.get(layer, 0) + row
    for layer, row in expected.items():
        torch.testing.assert_close(vec.direction(layer), row, rtol=1e-4, atol=1e-3)
    total = sum(torch.from_numpy(np.asarray(t, dtype=np.float32)).reshape(-1) for t in tensors.values())
    torch.testing.assert_close(vec.directions.sum(0), total, rtol=1e-4, atol=1e-3)  # nothing lost or counted twice


def _safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    return save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()})


def _gguf_bytes(tensors: dict[str, np.ndarray], arch: str = "controlvector") -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_gguf(Path(folder) / "v.gguf", tensors, arch).read_bytes()


def _import_bytes(data: bytes, suffix: str, importer) -> None:
    """Write `data` to a file, import it with `importer(path, model)`, and through the CLI's reader."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"v{suffix}"
        path.write_bytes(data)
        for load in (lambda: importer(path, MODEL), lambda: load_vector(path, None).for_model(MODEL)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load()
            except TlTraitsError:
                pass


GOOD = {"layer.1": np.ones(D, dtype=np.float32), "layer.-1": np.full(D, 2.0, dtype=np.float32)}
GOOD_GGUF = {"direction.1": np.ones(D, dtype=np.float32), "direction.3": np.full(D, 2.0, dtype=np.float32)}


@SETTINGS
@given(st.binary(max_size=256))
def test_random_bytes_import_or_raise_our_error(data):
    _import_bytes(data, ".safetensors", tt.import_safetensors)
    _import_bytes(data, ".gguf", tt.import_gguf)
    _import_bytes(b"GGUF" + data, ".gguf", tt.import_gguf)


@SETTINGS
@given(
    st.sampled_from(["safetensors", "gguf"]),
    st.integers(0, 10_000),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_a_valid_file_cut_short_or_with_flipped_bytes_imports_or_raises_our_error(kind, cut, flips):
    data = bytearray(_safetensors_bytes(GOOD) if kind == "safetensors" else _gguf_bytes(GOOD_GGUF))
    for where, byte in flips:
        data[where % len(data)] = byte
    data = bytes(data[: max(0, len(data) - cut % (len(data) + 1))])
    _import_bytes(data, f".{kind}", tt.import_safetensors if kind == "safetensors" else tt.import_gguf)


@SETTINGS
@given(st.dictionaries(st_names, st_specs, min_size=0, max_size=3))
def test_a_safetensors_file_with_any_names_and_shapes_imports_correctly_or_raises_our_error(spec):
    tensors = {name: _array(shape, dtype, value) for name, (shape, dtype, value) in spec.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        path.write_bytes(_safetensors_bytes(tensors))
        _check_import(lambda: tt.import_safetensors(path, MODEL), tensors)
        _check_import(lambda: load_vector(path, None).for_model(MODEL), tensors)


@SETTINGS
@given(
    st.dictionaries(gguf_names, gguf_specs, min_size=0, max_size=3),
    st.sampled_from(["controlvector", "controlvector", "llama"]),
)
def test_a_gguf_file_with_any_names_and_shapes_imports_correctly_or_raises_our_error(spec, arch):
    tensors = {name: _array(shape, dtype, value) for name, (shape, dtype, value) in spec.items()}
    assume(all(len(name.encode()) < 60 for name in tensors))  # GGUF's own limit on tensor names
    try:
        data = _gguf_bytes(tensors, arch)
    except Exception:  # noqa: BLE001 - the writer refused (an empty tensor, say): nothing to import
        assume(False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.gguf"
        path.write_bytes(data)
        _check_import(lambda: tt.import_gguf(path, MODEL), tensors)
        _check_import(lambda: load_vector(path, None).for_model(MODEL), tensors)
