"""The main job's report: one self-contained HTML page built from the files in an output folder (no model needed)."""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any, cast

from tl_traits.app.report_assets import BROWSER_JS, STYLE
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.figures import img_tag, save_figure
from tl_traits.core.files import read_jsonl, safe_name
from tl_traits.core.pages import Page
from tl_traits.core.vectors import TraitVectors
from tl_traits.extraction.figures import layer_metrics
from tl_traits.monitoring.figures import group_histogram
from tl_traits.monitoring.monitor import GroupComparison, note_category
from tl_traits.monitoring.views import token_view
from tl_traits.steering.evaluation import load_evaluation
from tl_traits.steering.figures import strength_curves

EXAMPLES_PER_TRAIT = 3
PAGE_SIZE = 50


class ReportError(TlTraitsError):
    """An output folder the report cannot be built from."""


def build_report(out: str | os.PathLike[str]) -> Page:
    """The report page for a main-job output folder (reads results/summary.json and what it names)."""
    out = Path(out)
    summary_path = out / "results" / "summary.json"
    if not summary_path.is_file():
        raise ReportError(f"{out} has no results/summary.json; run `tl-traits run --out {out}` first")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    sections = [_overview(summary)]
    for trait, info in summary["traits"].items():
        sections.append(_trait_section(out, trait, info))
    requests = _request_rows(out / "results" / "requests.jsonl")
    sections.append(_groups_section(out, summary["requests"], requests))
    projections = out / "results" / "projections.json"
    if projections.is_file():
        sections.append(_projection_section(json.loads(projections.read_text(encoding="utf-8"))))
    sections.append(_browser_section(requests, summary["requests"]))
    return Page(f"tl_traits report: {summary['model']['name']}", STYLE + "\n".join(sections))


def write_report(out: str | os.PathLike[str]) -> Path:
    """Build the page and write it atomically to `<out>/report.html`."""
    return build_report(out).save(Path(out) / "report.html")


# -- sections -----------------------------------------------------------------------------------------
def _overview(summary: dict[str, Any]) -> str:
    model, config = summary["model"], summary["config"]
    timings = summary.get("timings_s", {})
    rows = []
    for trait, info in summary["traits"].items():
        method = info["steer_method"]
        m = info["methods"][method]
        h = info["steering"]
        rows.append(
            [
                trait,
                method,
                m["best_layer"],
                f"{m['auroc']:.3f}",
                f"{m['cohens_d']:.2f}",
                _setting(h),
                _num(h["test_score"], ".1f"),
                _num(h["unsteered_test_score"], ".1f"),
                _gain(h),
            ]
        )
    comp = summary["requests"].get("comparison")
    lines = [
        f"<p class='meta'>Model <b>{_e(model['name'])}</b> ({_e(model.get('kind', ''))}, {model['n_layers']} layers, "
        f"d_model {model['d_model']}). Position {_e(config['position'])}; {_e(', '.join(_methods(summary)))}. "
        f"Built {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
        + (f"; job wall time {sum(timings.values()):.0f} s" if timings else "")
        + (f"; trial run on {config['limit']} examples" if config.get("limit") else "")
        + ".</p>",
        _table(
            [
                "trait",
                "steering method",
                "detection layer",
                "held-out AUROC",
                "Cohen's d",
                "steering setting (chosen on dev)",
                "steering score (test)",
                "unsteered (test)",
                "gain (95% interval)",
            ],
            rows,
        ),
        "<p class='meta'>Steering score: per answer the harmonic mean of the trait (in the asked direction), coherence "
        "and (where the trait's score counts it) relevance, 0-100, averaged over the test questions. The setting is "
        "chosen on separate dev questions; a gain whose interval lies above 0 means steering beat the model's own "
        "unsteered answers.</p>",
    ]
    if comp:
        g = summary["requests"]["groups"]
        lines.append(
            f"<p>Request set: {summary['requests']['trait']} projection, {g[0]} vs {g[1]}: "
            f"<b>Cohen's d {comp['cohens_d']:.2f}</b> (95% CI {comp['d_ci'][0]:.2f} to {comp['d_ci'][1]:.2f}), "
            f"AUROC {comp['auroc']:.3f}, Welch p {comp['p_value']:.2g}, n = {comp['n_a']} / {comp['n_b']}.</p>"
        )
    by_note = summary["requests"].get("by_note") or {}
    if by_note.get("comparison"):
        c, g = by_note["comparison"], by_note["groups"]
        lines.append(
            f"<p>By note: {g[0]} vs {g[1]} requests: <b>Cohen's d {c['cohens_d']:.2f}</b> "
            f"(95% CI {c['d_ci'][0]:.2f} to {c['d_ci'][1]:.2f}), AUROC {c['auroc']:.3f}, Welch p {c['p_value']:.2g}, "
            f"n = {c['n_a']} / {c['n_b']}.</p>"
        )
    if timings:
        lines.append(
            "<details><summary>Stage timings</summary>"
            + _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()])
            + "</details>"
        )
    return "<section><h2>Overview</h2>" + "\n".join(lines) + "</section>"


def _trait_section(out: Path, trait: str, info: dict[str, Any]) -> str:
    vecs = TraitVectors.load(out / info["vectors"])
    method_rows = [
        [
            name,
            m["best_layer"],
            f"{m['auroc']:.3f}",
            f"{m['accuracy']:.3f}",
            f"{m['cohens_d']:.2f}",
            f"{m['mean_auroc']:.3f}",
        ]
        for name, m in sorted(info["methods"].items(), key=lambda kv: (-kv[1]["auroc"], -kv[1]["cohens_d"]))
    ]
    result, header = load_evaluation(out / info["steering_log"])
    judges = header.get("judges", ["trait", "coherence"])
    layer_fig = layer_metrics(vecs, title=f"{trait}: held-out metrics by layer")
    sweep_fig = strength_curves(
        result,
        title=f"{trait}: steering search on the dev questions ({info['steer_method']})",
        trait_label=f"{judges[0]} score",
    )
    plot_dir = out / "plots"
    save_figure(layer_fig, plot_dir / f"{safe_name(trait)}-layers.png")
    save_figure(sweep_fig, plot_dir / f"{safe_name(trait)}-sweep.png")
    search_rows = [
        [
            r["setting"],
            _num(r.get("best strength"), ".3g"),
            _num(r.get("dev score"), ".1f"),
            _num(r.get("unsteered"), ".1f"),
            _num(r.get("gain"), "+.1f"),
            _num(r.get("trait"), ".1f"),
            _num(r.get("coherence"), ".1f"),
            _num(r.get("relevance"), ".1f"),
            r.get("strengths tried", ""),
        ]
        for r in info["steering_search"]
    ]
    h = info["steering"]
    n_dev, n_test = len(header.get("dev", [])), len(header.get("test", []))
    parts = [
        f"<section><h2>{_e(trait)}</h2>",
        f"<h3>Methods</h3><p class='meta'>{info['n_train']} training and {info['n_val']} held-out examples; "
        "each method's best layer by held-out AUROC (ties: larger d).</p>",
        _table(["method", "best layer", "AUROC", "accuracy", "Cohen's d", "mean AUROC over layers"], method_rows),
        img_tag(layer_fig, f"{trait} metrics by layer"),
        f"<h3>Steering</h3><p class='meta'>Judges: {_e(' / '.join(judges))} (trait / coherence / relevance). "
        f"{_e(info.get('measures') or '')}. The search places strengths by how far they move the model's next-token "
        "distributions (KL against the unsteered model), judges them in rising order on "
        f"{n_dev} dev questions until the answers break, and picks the best steering score; that one setting is then "
        f"scored on {n_test} test questions it never saw. Strength is in units of the layer's mean residual norm.</p>",
        f"<p><b>Chosen on dev: {_e(_setting(h))}.</b> Test half: steering score <b>{_num(h['test_score'], '.1f')}</b> "
        f"against <b>{_num(h['unsteered_test_score'], '.1f')}</b> unsteered, gain {_gain(h)}; trait "
        f"{_num(h['trait'], '.1f')} (unsteered {_num(h['unsteered_trait'], '.1f')}), coherence "
        f"{_num(h['coherence'], '.1f')} (unsteered {_num(h['unsteered_coherence'], '.1f')}), relevance "
        f"{_num(h['relevance'], '.1f')} (unsteered {_num(h['unsteered_relevance'], '.1f')}). A good setting raises the "
        "trait while keeping coherence and relevance near the unsteered answers'; a gain interval above 0 means it "
        "beat not steering.</p>",
        "<h4>The dev search, per layer</h4>",
        _table(
            [
                "setting",
                "best strength",
                "dev score",
                "unsteered (dev)",
                "gain",
                "trait",
                "coherence",
                "relevance",
                "strengths tried",
            ],
            search_rows,
        ),
        img_tag(sweep_fig, f"{trait} steering search"),
        _examples(result, info),
        "</section>",
    ]
    return "\n".join(parts)


def _setting(h: dict[str, Any]) -> str:
    if h.get("layers") is None:
        return "none scored"
    where = f"layer {h['layers'][0]}" if len(h["layers"]) == 1 else f"layers {h['layers'][0]}-{h['layers'][-1]}"
    return f"{where}, strength {h['strength']:.3g}"


def _gain(h: dict[str, Any]) -> str:
    if h.get("gain") is None:
        return "n/a"
    low, high = h.get("gain_interval") or (None, None)
    return f"{h['gain']:+.1f}" + ("" if low is None else f" ({low:+.1f} to {high:+.1f})")


def _examples(result: Any, info: dict[str, Any]) -> str:
    outcome = next(iter(result.outcomes.values()), None)
    if outcome is None:
        return "<p class='meta'>No steered setting was scored, so there are no before/after examples.</p>"
    before, after = outcome.baseline, outcome.test.answers
    rows = []
    for i, q in enumerate(before.questions[:EXAMPLES_PER_TRAIT]):
        rows.append(
            f"<tr><td>{_e(q)}</td><td class='gen'>{_e(before.responses[i])}</td>"
            f"<td class='scores'>{_scores(before.scores, i)}</td>"
            f"<td class='gen'>{_e(after.responses[i])}</td>"
            f"<td class='scores'>{_scores(after.scores, i)}</td></tr>"
        )
    return (
        f"<h3>Example generations</h3><p class='meta'>Test questions, greedy; steered at the setting chosen on dev "
        f"({_e(outcome.chosen.label)}). Beside each answer: the judges' trait, coherence and relevance scores and its "
        "steering score (0-100; higher is better), so each can be checked against the text.</p>"
        "<table><tr><th>question</th><th>unsteered</th><th>scores</th><th>steered</th><th>scores</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _scores(scores: dict[str, list[Any]], i: int) -> str:
    """One response's judge scores as short lines (n/a where a judge gave none)."""
    names = (("trait", "trait"), ("coherence", "coh."), ("relevance", "rel."), ("score", "score"))
    return "<br>".join(
        f"{label} {_num(scores[k][i] if len(scores.get(k, [])) > i else None, '.0f')}" for k, label in names
    )


def _groups_section(out: Path, info: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    where = (
        f"the mean {_e(info['trait'])} projection ({_e(info['method'])}, layer {info['layer']}) over its "
        "response tokens"
    )
    counts = ", ".join(f"{k}: {v}" for k, v in info["counts"].items())
    parts = [
        f"<section><h2>Group comparison: {_e(info['prompt_set'])}</h2>",
        f"<p class='meta'>Each request answered greedily and scored by {where}.</p>",
        f"<h3>By the {_e(info['judge'])} judge: {' vs '.join(map(_e, info['groups']))}</h3>"
        f"<p class='meta'>Labels from the judge on each response ({_e(counts)}; unscored {info['unscored']}).</p>",
        _comparison(out, "groups", info["groups"], info["comparison"], [r["group"] for r in rows], rows, info),
    ]
    by_note = info.get("by_note")
    if by_note:
        categories = [note_category(r) for r in rows]
        parts += [
            f"<h3>By the prompt set's notes: {' vs '.join(map(_e, by_note['groups']))}</h3>"
            "<p class='meta'>Groups from each prompt's note (its category before ':'), whatever "
            "the model answered.</p>",
            _comparison(out, "groups-by-note", by_note["groups"], by_note["comparison"], categories, rows, info),
        ]
    return "\n".join(parts) + "</section>"


def _comparison(
    out: Path,
    name: str,
    groups: list[str],
    comparison: dict[str, Any] | None,
    labels: list[Any],
    rows: list[dict[str, Any]],
    info: dict[str, Any],
) -> str:
    """Statistics and histogram for one two-group comparison of the rows' projections."""
    first = [r["projection"] for r, label in zip(rows, labels) if label == groups[0]]
    second = [r["projection"] for r, label in zip(rows, labels) if label == groups[1]]
    comp = GroupComparison(**{**comparison, "d_ci": tuple(comparison["d_ci"])}) if comparison else None
    fig = group_histogram(
        first,
        second,
        labels=cast(tuple[str, str], tuple(groups)),
        comparison=comp,
        xlabel=f"{info['trait']} projection (response mean, centred)",
        title=f"{info['prompt_set']}: {groups[0]} vs {groups[1]} at layer {info['layer']}",
    )
    save_figure(fig, out / "plots" / f"{name}.png")
    if comp is None:
        return "<p>Too few prompts in one group to compare (each needs at least 2).</p>" + img_tag(fig, name)
    caution = (
        "<p class='warn'>One group has fewer than 5 prompts: the bootstrap interval understates the "
        "uncertainty; read d as anecdotal.</p>"
        if min(comp.n_a, comp.n_b) < 5
        else ""
    )
    return (
        _table(
            ["", groups[0], groups[1]],
            [["n", comp.n_a, comp.n_b], ["mean projection", f"{comp.mean_a:.2f}", f"{comp.mean_b:.2f}"]],
        )
        + f"<p>Cohen's d <b>{comp.cohens_d:.2f}</b> (bootstrap 95% CI {comp.d_ci[0]:.2f} to {comp.d_ci[1]:.2f}), "
        f"AUROC {comp.auroc:.3f}, Welch t-test p = {comp.p_value:.2g}.</p>{caution}{img_tag(fig, name)}"
    )


def _projection_section(view: dict[str, Any]) -> str:
    parts = [
        "<section><h2>Per-token projections</h2>",
        f"<p class='meta'>Each token coloured by its {view['metric']} projection at layer {view['layer']} onto "
        f"{', '.join(map(_e, view['traits']))}; prompt and response tokens of a few requests from each group "
        "(the first token, an attention sink with an outsized norm, is left out so it does not set "
        "the colour scale).</p>",
    ]
    for item in view["items"]:
        parts.append(
            f"<h3>{_e(str(item['id']))} <span class='badge'>{_e(str(item['group']))}</span> "
            f"<span class='meta'>{_e(item['note'])}</span></h3>"
        )
        parts.append(token_view(item["tokens"], item["centered"]))
    return "\n".join(parts) + "</section>"


def _browser_section(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    data = json.dumps(rows, ensure_ascii=False).replace("<", "\\u003c")  # no "</script>" inside the JSON
    return (
        f"<section><h2>Prompt browser: {_e(info['prompt_set'])}</h2>"
        "<div id='browser' class='controls'>"
        "<label>group <select id='f-group'></select></label> "
        "<label>note <select id='f-note'></select></label> "
        "<label>search <input id='f-text' type='search' placeholder='prompt, response or note'></label> "
        "<span id='f-count' class='meta'></span></div>"
        "<div id='pager' class='controls'><button id='prev' type='button'>&larr; previous</button> "
        "<span id='page-label'></span> <button id='next' type='button'>next &rarr;</button></div>"
        "<div id='cards'></div>"
        f"<script type='application/json' id='prompt-data'>{data}</script>"
        f"<script>{BROWSER_JS.replace('__PAGE_SIZE__', str(PAGE_SIZE))}</script></section>"
    )


# -- small helpers ---------------------------------------------------------------------------------------
def _methods(summary: dict[str, Any]) -> list[str]:
    first: dict[str, Any] = next(iter(summary["traits"].values()), {"methods": {}})
    return list(first["methods"])


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _request_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportError(f"missing {path}; the job did not finish its prompt-set analysis")
    return read_jsonl(path, ReportError)
