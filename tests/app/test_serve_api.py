"""`tl-traits serve`'s API through the ASGI test client, on the tiny model's run folder: streaming, steering (strength 0
is the unsteered text), the prompt-set picker, ids (unknown, path-like), caps and readable errors."""

from __future__ import annotations

import json

import pytest
import torch

from tl_traits.core.generation import generate, generate_tokens
from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.prompts import prepare_inputs
from tl_traits.steering.steer import steer

from .conftest import LONG_PROMPT, MARKUP, events

pytest.importorskip("starlette", reason="the dashboard needs the [serve] extra (starlette, uvicorn)")

QUESTION = "How was your day?"


def chat(client, message=QUESTION, **body):
    response = client.post("/api/chat", json={"message": message, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return events(response)


def steer_events(client, strength, message=QUESTION, **body):
    payload = {
        "message": message,
        "vector": "emotion-joy.mean_diff",
        "layers": [1],
        "strength": strength,
        "max_new_tokens": 10,
        **body,
    }
    response = client.post("/api/steer", json=payload)
    assert response.status_code == 200, response.text
    return events(response)


def done(evs, which):
    return next(e for e in evs if e["type"] == "done" and e["which"] == which)


def test_info_names_everything_by_id_and_never_by_path(client, serve_run_dir):
    info = client.get("/api/info").json()
    ids = [v["id"] for v in info["vectors"]]
    assert "emotion-joy.mean_diff" in ids and "alignment-refusal.probe" in ids
    assert {"requests", "run.requests", "trait.emotion-joy"} <= {s["id"] for s in info["prompt_sets"]}
    assert info["defaults"]["chat_vectors"] == ["emotion-joy.mean_diff", "alignment-refusal.mean_diff"]
    assert info["defaults"]["steering"]["vector"] == "emotion-joy.mean_diff"  # the run's chosen setting
    assert "benign requests" in info["baseline"] and info["limits"]["max_new_tokens"] == 200
    text = json.dumps(info)
    assert str(serve_run_dir) not in text and str(serve_run_dir.parent) not in text  # no path reaches the browser


def test_chat_streams_each_token_then_its_values_and_ends_with_generates_text(client, dashboard):
    evs = chat(client, max_new_tokens=12)
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["queued", "start"] and kinds[-1] == "done"
    tokens = [e for e in evs if e["type"] == "token"]
    values = [e for e in evs if e["type"] == "values"]
    assert [e["i"] for e in tokens] == list(range(len(tokens))) and len(tokens) >= 1
    assert [e["i"] for e in values] == [e["i"] for e in tokens]  # every shown token gets its projections
    for token, value in zip(tokens, values):  # a token is sent before its values, which the next forward reads
        assert evs.index(token) < evs.index(value)
    watched = {m["id"] for m in evs[1]["monitors"]}
    assert watched == {"emotion-joy.mean_diff", "alignment-refusal.mean_diff"}
    assert all(set(v["values"]) == watched for v in values)
    final = evs[-1]
    assert final["text"] == generate(dashboard.model, [QUESTION], max_new_tokens=12)[0]
    assert final["tokens"] == len(tokens)


def test_streamed_values_are_each_tokens_residual_on_the_neutral_scale(client, dashboard):
    """One forward over prompt + the streamed tokens reads the same residuals the KV-cached stream read, token by
    token: each value is (h . v - neutral baseline) / the layer's mean norm."""
    evs = chat(client, max_new_tokens=8, vectors=["emotion-joy.mean_diff"], layer=1)
    served = dashboard.catalog.vectors["emotion-joy.mean_diff"].vector
    model = dashboard.model
    prompt = prepare_inputs(model, [[{"role": "user", "content": QUESTION}]]).token_ids[0]
    eos = model.tokenizer.eos_token_id
    generated = [t for t in generate_tokens(model, [QUESTION], max_new_tokens=8)[0] if t != eos]
    seen = {}

    def keep(act, hook):
        seen["h"] = act[0].float()

    with forward_hooks(model, [(hook_name(1, served.hook), keep)]):
        model(torch.tensor([prompt + generated]))
    raw = seen["h"][len(prompt) :] @ served.direction(1).float()
    expected = (raw - dashboard.baselines.values[("emotion-joy.mean_diff", 1)]) / served.norm(1)
    streamed = [e["values"]["emotion-joy.mean_diff"] for e in evs if e["type"] == "values"]
    assert len(streamed) == len(generated)
    assert streamed == pytest.approx(expected.tolist(), abs=2e-3)


def test_the_neutral_baseline_centres_the_models_own_neutral_answers(dashboard):
    """Averaged over the neutral answers themselves, every vector reads 0 at every layer (what 'centred' means)."""
    from tl_traits.monitoring.monitor import project

    base = dashboard.baselines
    assert len(base.prompts) == 8 and len(base.answers) == 8
    served = dashboard.catalog.vectors["alignment-refusal.probe"].vector
    proj = project(dashboard.model, {"r": served}, base.prompts, layers=served.layers, responses=base.answers)
    for layer in served.layers:
        means = proj.response_means("r", layer, "raw")
        monitor = base.monitor("alignment-refusal.probe", served, layer)
        assert sum(monitor.value(m) for m in means) / len(means) == pytest.approx(0.0, abs=1e-4)


def test_strength_zero_gives_exactly_the_unsteered_text_and_a_strength_changes_it(client, dashboard):
    zero = steer_events(client, 0.0)
    assert [e["type"] for e in zero if e["type"] in ("start", "done")] == ["start", "done", "start", "done"]
    assert done(zero, "steered")["text"] == done(zero, "unsteered")["text"]
    assert done(zero, "unsteered")["text"] == generate(dashboard.model, [QUESTION], max_new_tokens=10)[0]
    strong = steer_events(client, 8.0)
    assert next(e for e in strong if e["type"] == "start" and e["which"] == "unsteered").get("cached")  # reused
    assert done(strong, "unsteered")["text"] == done(zero, "unsteered")["text"]
    assert done(strong, "steered")["text"] != done(zero, "steered")["text"]
    vec = dashboard.catalog.vectors["emotion-joy.mean_diff"].vector
    with steer(dashboard.model, vec, [1], strength=8.0):  # the library's own steering gives the same answer
        assert done(strong, "steered")["text"] == generate(dashboard.model, [QUESTION], max_new_tokens=10)[0]
    away = steer_events(client, 8.0, direction=-1)
    assert next(e for e in away if e["type"] == "setting")["strength"] == -8.0
    assert not dashboard.model.hook_dict[hook_name(1, vec.hook)].fwd_hooks  # no hook left on the model


def test_steering_moves_the_reading_at_its_own_layer_by_the_strength(client):
    """Units: the projection is in the layer's mean norm, the unit of strength, so steering at the layer it is read at
    shifts the first token's reading by exactly the strength (that token's residual is the same up to the hook)."""
    evs = steer_events(client, 0.25, vectors=["emotion-joy.mean_diff"], layer=1)
    first = {e["which"]: e["values"]["emotion-joy.mean_diff"] for e in evs if e["type"] == "values" and e["i"] == 0}
    tokens = {e["which"]: e["text"] for e in evs if e["type"] == "token" and e["i"] == 0}
    assert tokens["steered"] == tokens["unsteered"]
    assert first["steered"] - first["unsteered"] == pytest.approx(0.25, abs=1e-3)


def test_steered_answers_are_judged_side_by_side(client):
    evs = steer_events(client, 2.0)
    scores = next(e for e in evs if e["type"] == "scores")
    assert "unavailable" not in scores, scores
    assert scores["judges"][0] == "classifier"  # joy's own trait judge, as the steering protocol uses
    for which in ("unsteered", "steered"):
        assert set(scores["scores"][which]) == {"trait", "coherence", "relevance", "score"}
        assert all(v is None or 0 <= v <= 100 for v in scores["scores"][which].values())


def test_prompt_sets_filter_search_and_page(client):
    page = client.get("/api/prompt-sets/requests", params={"size": 7, "label.note": "harmful"}).json()
    assert (page["total"], page["matched"], page["pages"], len(page["rows"])) == (60, 20, 3, 7)
    assert all(r["labels"]["note"] == "harmful" for r in page["rows"])
    last = client.get("/api/prompt-sets/requests", params={"size": 7, "label.note": "harmful", "page": 3}).json()
    assert len(last["rows"]) == 6 and not {r["id"] for r in last["rows"]} & {r["id"] for r in page["rows"]}
    found = client.get("/api/prompt-sets/requests", params={"q": "KEYLESS"}).json()
    assert [r["id"] for r in found["rows"]] == ["r05"]
    run = client.get("/api/prompt-sets/run.requests", params={"label.group": "answered", "size": 100}).json()
    assert run["matched"] >= 1 and all(r["labels"]["group"] == "answered" for r in run["rows"])
    assert client.get("/api/prompt-sets/requests", params={"label.colour": "red"}).status_code == 400
    for bad in ({"size": 0}, {"size": 1000}, {"page": 0}, {"page": "two"}):
        response = client.get("/api/prompt-sets/requests", params=bad)
        assert response.status_code == 400 and "error" in response.json()


def test_prompts_and_responses_come_whole(client):
    rows = client.get("/api/prompt-sets/run.requests", params={"q": "everything about the sea"}).json()["rows"]
    assert len(rows) == 1 and rows[0]["prompt"] == LONG_PROMPT and len(rows[0]["prompt"]) > 5000
    markup = client.get("/api/prompt-sets/run.requests", params={"q": "onerror"}).json()["rows"]
    assert markup[0]["response"] == MARKUP  # as data; the page shows it as text (the browser test checks)


def test_an_examples_projections_cover_its_prompt_and_response(client):
    run = client.get("/api/prompt-sets/run.requests", params={"size": 1}).json()["rows"][0]
    view = client.post(
        "/api/prompt-sets/run.requests/projections",
        json={"index": run["index"], "vectors": ["alignment-refusal.mean_diff"]},
    ).json()
    assert view["generated"] is False and view["response"] == run["response"]
    assert len(view["tokens"]) == len(view["segments"]) == len(view["values"]["alignment-refusal.mean_diff"])
    assert {"prompt", "response"} <= set(view["segments"])
    bundled = client.post("/api/prompt-sets/requests/projections", json={"index": 3, "max_new_tokens": 5}).json()
    assert bundled["generated"] is True and "response" in bundled["segments"]  # no response in the set: generated


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"vectors": ["nope.mean_diff"]}, 404, "no vector 'nope.mean_diff'"),
        ({"vectors": ["../../etc/passwd"]}, 400, "never by a path"),
        ({"vectors": ["/etc/passwd"]}, 400, "never by a path"),
        ({"vectors": ["..\\secrets"]}, 400, "never by a path"),
        ({"vectors": "emotion-joy.mean_diff"}, 400, "must be a list"),
        ({"layer": 7}, 400, "has no layer 7"),
    ],
)
def test_bad_vector_choices_are_refused_before_the_model_runs(client, body, status, says):
    response = client.post("/api/chat", json={"message": QUESTION, **body})
    assert response.status_code == status and says in response.json()["error"]


def test_unknown_and_path_like_prompt_sets_and_files_are_refused(client):
    assert client.get("/api/prompt-sets/nope").status_code == 404
    assert "no prompt set 'nope'" in client.get("/api/prompt-sets/nope").json()["error"]
    for path in (
        "/api/prompt-sets/..%2F..%2Fetc%2Fpasswd",
        "/api/prompt-sets/%2Fetc%2Fpasswd",
        "/static/..%2Fdashboard.py",
        "/static/dashboard.py",
        "/static/%2E%2E%2F%2E%2E%2Fcore%2Fmodels.py",
    ):
        response = client.get(path)
        assert response.status_code == 404 and set(response.json()) == {"error"}, path
    assert client.post("/api/prompt-sets/requests/projections", json={"index": 60}).status_code == 404
    steer_bad = client.post("/api/steer", json={"message": "hi", "vector": "~/.ssh/id_rsa", "layers": [1]})
    assert steer_bad.status_code == 400 and "never by a path" in steer_bad.json()["error"]
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "body, says",
    [
        ({"message": "x" * 2001}, "the prompt is 2001 characters; the dashboard takes at most 2000"),
        ({"message": QUESTION, "max_new_tokens": 201}, "generates at most 200"),
        ({"messages": [{"role": "user", "content": "hi"}] * 25}, "at most 24"),
    ],
)
def test_caps_answer_with_a_clear_message(client, body, says):
    response = client.post("/api/chat", json=body)
    assert response.status_code == 413 and says in response.json()["error"]


def test_a_prompt_past_the_context_is_a_readable_stream_error(client, dashboard):
    """1,869 characters fit the character cap; 201 tokens and 100 new ones do not fit the tiny model's 256."""
    evs = chat(client, " ".join(["lighthouse"] * 170), max_new_tokens=100)
    error = evs[-1]
    assert error["type"] == "error" and "Traceback" not in error["message"]
    assert "passes the model's context of 256: shorten it or ask for at most 54 new tokens" in error["message"]
    assert chat(client, max_new_tokens=3)[-1]["type"] == "done"  # the next request runs as usual


@pytest.mark.parametrize(
    "kwargs, status, says",
    [
        ({"content": b"not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "a JSON object"),
        ({"content": b"message=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, "as JSON"),
        ({"json": {"messages": [{"role": "boss", "content": "hi"}]}}, 400, "message 0 must be"),
        (
            {"json": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}},
            400,
            "the last message must be the user's",
        ),
    ],
)
def test_bad_requests_are_readable_json(client, kwargs, status, says):
    response = client.post("/api/chat", **kwargs)
    assert response.status_code == status and says in response.json()["error"]


def test_a_failure_inside_the_model_is_one_readable_line_not_a_traceback(client, dashboard, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('the kernel fell over\n  File "/secret/path.py", line 1')

    monkeypatch.setattr(dashboard.model, "generate_stream", broken)
    error = chat(client)[-1]
    assert error["type"] == "error" and error["status"] == 500
    assert "RuntimeError: the kernel fell over" in error["message"] and "/secret" not in error["message"]
    monkeypatch.undo()
    assert chat(client, max_new_tokens=2)[-1]["type"] == "done"


def test_answers_carry_a_strict_content_security_policy_and_only_local_host_names(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]  # no inline script may run
    rebound = client.get("/api/info", headers={"host": "attacker.example"})
    assert rebound.status_code == 400  # a page elsewhere that rebinds its name to 127.0.0.1 gets nothing


def test_binding_beyond_loopback_is_said(dashboard):
    from tl_traits.app.serve.server import allowed_hosts, exposure_warning, is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert exposure_warning("127.0.0.1") is None
    assert "reachable from other machines" in (exposure_warning("0.0.0.0") or "")
    assert allowed_hosts("0.0.0.0") is None and "localhost" in (allowed_hosts("127.0.0.1") or [])


def test_the_command_warns_when_it_binds_beyond_loopback(serve_run_dir, monkeypatch, capsys):
    from tl_traits.app.cli import main
    from tl_traits.app.serve import server

    served = []
    monkeypatch.setattr(server, "run_server", lambda dashboard, host, port: served.append((dashboard, host, port)))
    with pytest.raises(SystemExit) as exit_code:
        main(["serve", str(serve_run_dir), "--host", "0.0.0.0", "--port", "9000", "--no-judges", "--quiet"])
    assert exit_code.value.code == 0
    out, err = capsys.readouterr()
    assert "warning: binding 0.0.0.0: the dashboard is reachable from other machines" in err
    assert "dashboard: http://0.0.0.0:9000/" in out and served[0][1:] == ("0.0.0.0", 9000)
    assert not served[0][0].judges.enabled
    with pytest.raises(SystemExit):
        main(["serve", str(serve_run_dir), "--no-judges", "--quiet"])
    out, err = capsys.readouterr()
    assert "warning" not in err and "dashboard: http://127.0.0.1:8765/" in out  # loopback by default


def test_a_port_in_use_is_refused_before_the_model_loads(serve_run_dir, capsys, monkeypatch):
    import socket

    from tl_traits.app.cli import main
    from tl_traits.app.serve import dashboard

    loaded = []
    monkeypatch.setattr(dashboard, "build_dashboard", lambda *a, **k: loaded.append(a))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_code:
            main(["serve", str(serve_run_dir), "--port", str(port), "--quiet"])
    assert exit_code.value.code == 2 and loaded == []  # refused before any model work
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_command_without_the_serve_extra_names_its_install_line(monkeypatch, capsys, tmp_path):
    import sys

    from tl_traits.app.cli import main

    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(SystemExit) as exit_code:
        main(["serve", str(tmp_path)])
    assert exit_code.value.code == 2
    assert "pip install 'tl_traits[serve]'" in capsys.readouterr().err


def test_sources_that_are_not_served_are_refused_by_name(tmp_path):
    from tl_traits.app.serve.catalog import ServeError, load_catalog

    with pytest.raises(ServeError, match="no such folder or file"):
        load_catalog([tmp_path / "missing"])
    with pytest.raises(ServeError, match="not a `tl-traits run` output folder"):
        load_catalog([tmp_path])
    (tmp_path / "other.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ServeError, match="not a vectors file tl_traits reads"):
        load_catalog([tmp_path / "other.safetensors"])


@pytest.mark.parametrize("kind", ["tiny_hooked", "dashboard"])
def test_both_model_kinds_stream_generates_tokens_and_read_each_tokens_residual(kind, request):
    """The stream on a HookedTransformer (GPT-2 style, no chat template) and on the bridge: `generate`'s text, and each
    token's value read from that token's own residual (one forward over prompt + answer reads the same)."""
    from tl_traits.app.serve.streaming import Monitor, stream_answer
    from tl_traits.core.vectors import TraitVector

    fixture = request.getfixturevalue(kind)
    model = fixture.model if kind == "dashboard" else fixture
    torch.manual_seed(0)
    d_model, n_layers = int(model.cfg.d_model), int(model.cfg.n_layers)
    vec = TraitVector(
        "random",
        torch.nn.functional.normalize(torch.randn(n_layers, d_model), dim=-1),
        list(range(n_layers)),
        torch.full((n_layers,), 2.0),
        {},
    )
    monitor = Monitor("r", vec, n_layers - 1, baseline=0.5, unit=2.0)
    prompt = "The quick brown fox"
    evs = list(stream_answer(model, prompt, [monitor], max_new_tokens=9))
    assert evs[-1]["text"] == generate(model, [prompt], max_new_tokens=9)[0]
    ids = prepare_inputs(model, [prompt]).token_ids[0]
    eos = model.tokenizer.eos_token_id
    new = [t for t in generate_tokens(model, [prompt], max_new_tokens=9)[0] if t != eos]
    seen = {}

    def keep(act, hook):
        seen["h"] = act[0].float()

    with forward_hooks(model, [(monitor.hook, keep)]):
        model(torch.tensor([ids + new]))
    expected = ((seen["h"][len(ids) :] @ vec.direction(n_layers - 1) - 0.5) / 2.0).tolist()
    assert [e["values"]["r"] for e in evs if e["type"] == "values"] == pytest.approx(expected, abs=2e-3)


def test_the_page_puts_no_data_in_as_markup_and_ships_in_the_wheel():
    """The page's modules have no HTML sink (data goes in with textContent), the server sends exactly them, and
    pyproject's package-data takes every one of them into a wheel."""
    import fnmatch
    from importlib import resources
    from pathlib import Path

    from tl_traits.app.serve.web import STATIC

    folder = resources.files("tl_traits.app.serve") / "static"
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert files == sorted(STATIC)
    for name in files:
        text = (folder / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{name} uses {sink}"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["tl_traits.app.serve"]
    assert all(any(fnmatch.fnmatch(f"static/{name}", p) for p in patterns) for name in files)
    assert "tl_traits.app.serve" in pyproject["tool"]["setuptools"]["packages"]
