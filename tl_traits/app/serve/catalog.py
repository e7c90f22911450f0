"""What `tl-traits serve` offers the browser: vectors and prompt sets by id, read once at start-up from a run folder or
vector files, and the paged, filtered queries over a prompt set. No model and no web framework here."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import parse_json_object, read_jsonl, safe_name
from tl_traits.core.trait_sets import list_traits, load_trait
from tl_traits.core.vectors import TraitVector, TraitVectors, has_vectors_header
from tl_traits.monitoring.monitor import load_prompt_set, note_category

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,119}")
MAX_PAGE_SIZE = 100
# a run's request rows: what each recorded number is, as the picker shows it
RUN_FIELDS = {"judge_score": "judge score", "projection": "run's mean projection"}


class ServeError(TlTraitsError):
    """A dashboard request or start-up input that cannot work; the message says what to change. `status` is the
    HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_id(value: Any, what: str) -> str:
    """`value` when it looks like an id; a path (or anything else) is refused: the browser names things by id only."""
    if not isinstance(value, str) or not value:
        raise ServeError(f"{what} must be an id (a string from /api/info), not {value!r:.60}")
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        raise ServeError(
            f"{what} {value[:80]!r} is not an id: the dashboard names {what}s by the ids /api/info "
            "lists (letters, digits, '.', '-', '_'), never by a path"
        )
    return value


@dataclass
class ServedVector:
    """One method's vector from one file, as the browser sees it."""

    id: str
    trait: str  # the trait set it was extracted from ("emotion/joy"), or the file's stem
    method: str
    vector: TraitVector
    file: str  # the file's name only: the browser is never told a path

    @property
    def label(self) -> str:
        return f"{self.trait.split('/')[-1]} ({self.method})"

    def describe(self, default_layer: int | None = None) -> dict[str, Any]:
        vec = self.vector
        best = vec.best_layer("auroc") if "auroc" in vec.metrics else vec.layers[len(vec.layers) // 2]
        return {
            "id": self.id,
            "label": self.label,
            "trait": self.trait,
            "method": self.method,
            "file": self.file,
            "layers": list(vec.layers),
            "best_layer": best,
            "steering_layer": default_layer,
            "units": vec.units,
        }


@dataclass
class PromptRow:
    """One prompt of a set, with its response when the set has one and the labels it can be filtered by."""

    index: int
    id: str
    prompt: str
    response: str | None
    note: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # judge score, recorded projection, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "prompt": self.prompt,
            "response": self.response,
            "note": self.note,
            "labels": self.labels,
            "extra": self.extra,
        }


@dataclass
class PromptCollection:
    """A prompt set the dashboard can browse: bundled, from the run folder, or a served vector's trait set."""

    id: str
    name: str
    description: str
    source: str  # "bundled", "run" or "trait"
    rows: list[PromptRow]

    @property
    def label_keys(self) -> list[str]:
        return sorted({k for row in self.rows for k in row.labels})

    def facets(self) -> dict[str, dict[str, int]]:
        """Per label, how many rows carry each value (what a filter can choose)."""
        out: dict[str, dict[str, int]] = {}
        for key in self.label_keys:
            counts: dict[str, int] = {}
            for row in self.rows:
                value = row.labels.get(key, "(none)")
                counts[value] = counts.get(value, 0) + 1
            out[key] = dict(sorted(counts.items()))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "size": len(self.rows),
            "labels": self.facets(),
            "has_responses": any(row.response is not None for row in self.rows),
        }

    def query(
        self, *, page: int = 1, size: int = 20, text: str = "", labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One page of the rows that match `text` (in prompt, response, note or id; any case) and every label."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ServeError(f"size must be 1 to {MAX_PAGE_SIZE} rows per page, not {size}")
        if page < 1:
            raise ServeError(f"page counts from 1, not {page}")
        wanted = {k: v for k, v in (labels or {}).items() if v not in ("", "all")}
        unknown = sorted(set(wanted) - set(self.label_keys))
        if unknown:
            raise ServeError(
                f"prompt set {self.id!r} has no label {unknown[0]!r}; its labels are "
                f"{', '.join(self.label_keys) or 'none'}"
            )
        needle = text.strip().lower()
        matched = [
            row
            for row in self.rows
            if all(row.labels.get(k, "(none)") == v for k, v in wanted.items())
            and (not needle or needle in "\n".join((row.id, row.prompt, row.response or "", row.note)).lower())
        ]
        pages = max(1, math.ceil(len(matched) / size))
        start = (min(page, pages) - 1) * size
        return {
            "set": self.id,
            "total": len(self.rows),
            "matched": len(matched),
            "page": min(page, pages),
            "pages": pages,
            "size": size,
            "rows": [row.to_dict() for row in matched[start : start + size]],
        }

    def row(self, index: Any) -> PromptRow:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.rows):
            raise ServeError(f"prompt set {self.id!r} has rows 0 to {len(self.rows) - 1}; no row {index!r:.40}", 404)
        return self.rows[index]


@dataclass
class Catalog:
    """Everything the dashboard serves, by id; built once from the command line's sources."""

    vectors: dict[str, ServedVector]
    prompt_sets: dict[str, PromptCollection]
    model: str | None = None  # what the run folder was made with (None: the embedded model)
    kind: str = "bridge"
    defaults: dict[str, Any] = field(default_factory=dict)  # chat vectors and the steering setting to start from
    sources: list[str] = field(default_factory=list)  # folder and file names, for the page's header

    def vector(self, value: Any) -> ServedVector:
        key = check_id(value, "vector")
        if key not in self.vectors:
            raise ServeError(f"no vector {key!r}; the served vectors are {', '.join(self.vectors)}", 404)
        return self.vectors[key]

    def prompt_set(self, value: Any) -> PromptCollection:
        key = check_id(value, "prompt set")
        if key not in self.prompt_sets:
            raise ServeError(f"no prompt set {key!r}; the served sets are {', '.join(self.prompt_sets)}", 404)
        return self.prompt_sets[key]


def load_catalog(sources: Sequence[str | Path], *, trait_sets: bool = True) -> Catalog:
    """A catalog from a `tl-traits run` output folder, or from vectors files written by `extract` (several allowed).

    trait_sets: also offer the bundled trait set each vector was extracted from as a browsable prompt set.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise ServeError("name a run folder (tl-traits run's --out, e.g. out) or vectors files from extract")
    catalog = Catalog({}, {})
    for path in paths:
        if path.is_dir():
            _add_run_folder(catalog, path)
        elif path.is_file():
            _add_vectors_file(catalog, path)
        else:
            raise ServeError(f"{path}: no such folder or file (serve takes a run folder or vectors files)")
        catalog.sources.append(path.name or str(path))
    if not catalog.vectors:
        raise ServeError(f"no vectors in {', '.join(map(str, paths))}: a run folder holds vectors/*.safetensors")
    for name in _bundled_prompt_sets():
        chosen = load_prompt_set(name)
        catalog.prompt_sets.setdefault(check_id(name, "prompt set"), _from_prompt_set(name, chosen))
    if trait_sets:
        for trait in dict.fromkeys(v.trait for v in catalog.vectors.values()):
            if trait in list_traits():
                key = "trait." + safe_name(trait)
                catalog.prompt_sets.setdefault(key, _from_trait(key, trait))
    catalog.defaults.setdefault("chat_vectors", _default_chat_vectors(catalog))
    return catalog


def _add_run_folder(catalog: Catalog, folder: Path) -> None:
    summary_path = folder / "results" / "summary.json"
    files = sorted((folder / "vectors").glob("*.safetensors")) if (folder / "vectors").is_dir() else []
    if not summary_path.is_file() and not files:
        raise ServeError(
            f"{folder} is not a `tl-traits run` output folder (no results/summary.json, no "
            "vectors/*.safetensors); run `tl-traits run --out FOLDER` first or name vectors files"
        )
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        summary = parse_json_object(summary_path.read_text(encoding="utf-8"), str(summary_path), ServeError)
        config = summary.get("config") or {}
        catalog.model = catalog.model or config.get("model")
        catalog.kind = config.get("kind") or catalog.kind
    for path in files:
        _add_vectors_file(catalog, path)
    steering: dict[str, Any] = {}
    chat: list[str] = []
    for trait, info in (summary.get("traits") or {}).items():
        key = f"{safe_name(trait)}.{info.get('steer_method')}"
        if key not in catalog.vectors:
            continue
        chat.append(key)
        h = info.get("steering") or {}
        if not steering and h.get("layers") and h.get("strength") is not None:
            steering = {"vector": key, "layers": list(h["layers"]), "strength": float(h["strength"])}
    if chat:
        catalog.defaults["chat_vectors"] = chat
    if steering:
        catalog.defaults["steering"] = steering
    requests = folder / "results" / "requests.jsonl"
    if requests.is_file():
        name = str((summary.get("requests") or {}).get("prompt_set") or "requests")
        catalog.prompt_sets["run." + safe_name(name)] = _from_run_rows(
            "run." + safe_name(name), name, read_jsonl(requests, ServeError)
        )


def _add_vectors_file(catalog: Catalog, path: Path) -> None:
    try:
        ours = has_vectors_header(path)
    except Exception as exc:  # noqa: BLE001 - whatever the reader says, the file is not one we read
        raise ServeError(f"{path} is not a vectors file tl_traits reads ({type(exc).__name__}: {exc})") from exc
    if not ours:
        raise ServeError(
            f"{path} is another tool's vector file; the dashboard projects on vectors from extract (it "
            "needs the norms and layers they record): extract the trait with `tl-traits extract`"
        )
    vecs = TraitVectors.load(path)
    trait = str((vecs.metadata.get("dataset") or {}).get("name") or path.stem)
    for method in vecs.methods:
        key = check_id(f"{safe_name(trait)}.{safe_name(method)}", "vector")
        if key in catalog.vectors:
            raise ServeError(
                f"two sources hold the {method} vector of {trait} ({catalog.vectors[key].file} and "
                f"{path.name}); serve one of them"
            )
        catalog.vectors[key] = ServedVector(key, trait, method, vecs[method], path.name)


def _default_chat_vectors(catalog: Catalog) -> list[str]:
    """One vector per trait: mean_diff where there is one, else the trait's first method."""
    chosen: dict[str, str] = {}
    for key, served in catalog.vectors.items():
        if served.trait not in chosen or served.method == "mean_diff":
            chosen[served.trait] = key
    return list(chosen.values())


def _bundled_prompt_sets() -> list[str]:
    folder = resources.files("tl_traits") / "prompt_sets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _from_prompt_set(key: str, chosen: Any) -> PromptCollection:
    rows = [
        PromptRow(
            i,
            str(p.get("id", i)),
            p["text"],
            p.get("response"),
            str(p.get("note") or ""),
            {"note": note_category(p) or "(none)"},
        )
        for i, p in enumerate(chosen.prompts)
    ]
    return PromptCollection(key, chosen.name, chosen.description, "bundled", rows)


def _from_run_rows(key: str, name: str, records: list[Any]) -> PromptCollection:
    rows = []
    for i, r in enumerate(records):
        labels = {"note": note_category(r) or "(none)", "group": str(r.get("group") or "unscored")}
        extra = {label: _number(r.get(k)) for k, label in RUN_FIELDS.items() if k in r}
        rows.append(
            PromptRow(
                i,
                str(r.get("id", i)),
                str(r.get("prompt", "")),
                r.get("response"),
                str(r.get("note") or ""),
                labels,
                extra,
            )
        )
    return PromptCollection(
        key,
        f"{name} (this run's answers)",
        "The run's greedy answer to each request, labelled by its judge (group) and note.",
        "run",
        rows,
    )


def _from_trait(key: str, trait: str) -> PromptCollection:
    data = load_trait(trait)
    rows = [
        PromptRow(i, f"{side[:3]}{i:03d}", ex.prompt, ex.response, "", {"side": side})
        for side, examples in (("positive", data.positive), ("negative", data.negative))
        for i, ex in enumerate(examples)
    ]
    for i, row in enumerate(rows):
        row.index = i
    return PromptCollection(
        key,
        f"{trait} (trait examples)",
        data.definition.strip().splitlines()[0] if data.definition.strip() else "",
        "trait",
        rows,
    )


def _number(value: Any) -> float | None:
    """JSON-safe: NaN and infinities (a response with no tokens) become None."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def json_line(event: dict[str, Any]) -> str:
    """One event of a stream as a JSON line; NaN and infinities become null, so every parser reads it."""
    return json.dumps(finite(event), ensure_ascii=False, allow_nan=False) + "\n"


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
