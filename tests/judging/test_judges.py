"""Judges: built-ins on clear cases and edge-case text, the logprob math and API protocol, make_judge, the registry."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tl_traits.plugins.judges.logprob import score_from_logprobs

import tl_traits as tt
from tl_traits.judging.judges import (
    FunctionJudge,
    Judge,
    JudgeError,
    clip_scores,
    make_judge,
)

BUILTINS = ["embedding", "logprob", "perplexity", "refusal", "vader"]
JOYFUL = "Oh, how wonderful! I love Mondays, a bright fresh start full of happy surprises!"
GLOOMY = "Sigh. Mondays are dreary and sad, another week of disappointment and loss."
QUESTION = "What do you think about Mondays?"
EDGE_TEXTS = ["", "   \n\t ", "今天是星期一，我很高兴。", "Понедельник — начало новой недели."]
log = math.log


@pytest.fixture(scope="module")
def joy():
    return tt.load_trait("emotion/joy")


# -- the logprob math ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "top, expected",
    [
        ({"80": log(0.5), "90": log(0.5)}, 85.0),
        ({"80": log(0.4), "hello": log(0.6)}, 80.0),  # non-integer tokens are ignored, mass renormalised
        ({" 7": log(0.3), "7": log(0.3), "9": log(0.4)}, 7.8),  # whitespace stripped; equal tokens add up
        ({"100": log(0.5), "150": log(0.3), "0": log(0.5)}, 50.0),  # above 100 ignored
        ({"-5": log(0.5), "7.5": log(0.3), "٣": log(0.2), "40": log(0.3)}, 40.0),  # no signs, decimals, other digits
    ],
)
def test_score_from_logprobs(top, expected):
    assert score_from_logprobs(top) == pytest.approx(expected)


def test_score_from_logprobs_needs_integer_mass():
    assert score_from_logprobs({"50": log(0.2), "The": log(0.8)}) is None  # 0.2 < 0.25
    assert score_from_logprobs({"50": log(0.26), "The": log(0.7)}) == pytest.approx(50.0)
    assert score_from_logprobs({}) is None
    assert score_from_logprobs({"8": log(0.5), "12": log(0.5)}, max_value=9) == pytest.approx(8.0)


# -- vader, refusal --------------------------------------------------------------------------------
def test_vader_scores_joy():
    judge = make_judge("vader")
    assert (judge.name, judge.kind, judge.trait) == ("vader", "trait", "joy")
    high, low = judge.score([QUESTION] * 2, [JOYFUL, GLOOMY])
    assert high > 85 and low < 20 and high - low > 50


REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I\u2019m sorry, but I can\u2019t do that.",  # curly apostrophes
    "I CANNOT assist with this request.",
    "As an AI language model, I do not have opinions.",
    "  **I won't** write that for you.",
    "That is a sensitive subject, and I can't provide instructions for it.",
]
COMPLIANT = [
    "Sure! Here's a short poem about the sea.",
    "I can't wait to tell you: Paris is the capital of France!",
    "I'm sorry to hear that. Here are three ways to feel better: rest, walk, talk.",
    "The capital of France is Paris.",
]


def test_refusal_phrases():
    judge = make_judge("refusal")
    assert (judge.kind, judge.trait) == ("trait", "refusal")
    assert judge.score(None, REFUSALS) == [100.0] * len(REFUSALS)
    assert judge.score(None, COMPLIANT) == [0.0] * len(COMPLIANT)
    assert judge.score(None, ["", "   "]) == [0.0, 0.0]
    custom = make_judge("refusal", phrases=["Nope, not doing"])
    assert custom.score(None, ["nope, NOT doing that"]) == [100.0]


# -- embedding -------------------------------------------------------------------------------------
def test_embedding_trait_ranks_joy(joy):
    judge = make_judge("embedding", trait=joy)
    assert (judge.kind, judge.trait) == ("trait", "joy")
    high, low = judge.score([QUESTION] * 2, [JOYFUL, GLOOMY])
    assert high > 60 > 40 > low


def test_embedding_relevance_ranks_on_topic():
    judge = make_judge("embedding:relevance")
    assert judge.kind == "relevance" and judge.trait is None
    q = "What are clouds made of?"
    answers = ["Clouds are made of tiny water droplets and ice crystals.", "The stock market closed higher today."]
    on, off = judge.score([q, q], answers)
    assert on > 80 and off < 20


def test_embedding_needs_the_trait():
    with pytest.raises(JudgeError, match=r"needs the trait .*HIGH/LOW.*make_judge\('embedding', trait=\.\.\.\)"):
        make_judge("embedding")


# -- perplexity ------------------------------------------------------------------------------------
def test_perplexity_ranks_fluent_above_salad_and_loops(bridge_model):
    judge = make_judge("perplexity", model=bridge_model)
    assert judge.kind == "coherence"
    q = "What are clouds made of?"
    fluent, salad, loop = judge.score(
        [q] * 3,
        [
            "Clouds are made of tiny droplets of water or ice crystals that float in the air.",
            "banana quantum seventeen purple whisper under the fridge logic sock",
            "the " * 30,
        ],
    )
    assert fluent > 80 and fluent > salad + 40 and fluent > loop + 40


def test_perplexity_refuses_a_hooked_model(bridge_model):
    judge = make_judge("perplexity", model=bridge_model)
    with bridge_model.hooks([("blocks.0.hook_resid_post", lambda x, hook: x)]):
        with pytest.raises(JudgeError, match="unsteered model.*outside|after leaving the steer block"):
            judge.score(["q"], ["a"])
    with pytest.raises(JudgeError, match=r"make_judge\('perplexity', model=model\)"):
        make_judge("perplexity")


# -- logprob: local model and an OpenAI-compatible server --------------------------------------------
def test_logprob_local_backend(bridge_model, joy):
    judge = make_judge("logprob", model=bridge_model, trait=joy)
    assert judge.max_score == 9  # SmolLM2 spells numbers digit by digit
    scores = judge.score([QUESTION, QUESTION], [JOYFUL, GLOOMY])
    assert all(s is None or 0 <= s <= 100 for s in scores)
    assert make_judge("logprob:coherence", model=bridge_model).kind == "coherence"


class _ChatServer(BaseHTTPRequestHandler):
    """Chat completions with logprobs: the top list is picked by a marker in the prompt."""

    tops: dict[str, dict[str, float]] = {}
    requests: list[dict] = []
    failures: dict[str, int] = {}  # marker -> how many 500s to answer before succeeding

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        prompt = body["messages"][-1]["content"]
        marker = next((m for m in self.tops if m in prompt), None)
        if marker in self.failures and self.failures[marker] > 0:
            self.failures[marker] -= 1
            return self._send(500, {"error": {"message": "overloaded", "type": "server_error"}})
        if "BAD_REQUEST" in prompt:
            return self._send(400, {"error": {"message": "no such model", "type": "invalid_request_error"}})
        top = self.tops.get(marker, {"Hello": -0.1})
        entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()]
        best = max(entries, key=lambda e: e["logprob"])
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": best["token"]},
            "finish_reason": "length",
            "logprobs": {"content": [{**best, "top_logprobs": entries}]},
        }
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice]}
        self._send(200, reply)

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.delenv("OPENAI_API_KEY", raising=False)
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def api_judge(base_url, **options):
    return make_judge("logprob:coherence", judge_model="judge-llm", base_url=base_url, backoff=0.01, **options)


def test_logprob_api_backend(chat_server):
    _ChatServer.tops = {
        "ANSWER_A": {"80": log(0.5), "90": log(0.5)},
        "ANSWER_B": {" 7": log(0.1), "The": log(0.9)},
        "ANSWER_C": {"20": log(0.3), "hmm": log(0.4), "40": log(0.3)},
    }
    _ChatServer.requests = []
    judge = api_judge(chat_server)
    scores = judge.score(["q"] * 3, ["ANSWER_A", "ANSWER_B", "ANSWER_C"])
    assert scores == [pytest.approx(85.0), None, pytest.approx(30.0)]
    sent = _ChatServer.requests[0]
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["logprobs"], sent["top_logprobs"]) == (
        "judge-llm",
        1,
        0,
        True,
        20,
    )
    assert "ANSWER_" in sent["messages"][0]["content"] and "0 to 100" in sent["messages"][0]["content"]


def test_logprob_api_retries_then_fails_clearly(chat_server):
    _ChatServer.tops = {"FLAKY": {"60": 0.0}}
    _ChatServer.failures = {"FLAKY": 2}
    assert api_judge(chat_server, max_retries=3).score(["q"], ["FLAKY"]) == [pytest.approx(60.0)]
    _ChatServer.failures = {"FLAKY": 10}
    with pytest.raises(JudgeError, match="every request .* failed after 1 retries"):
        api_judge(chat_server, max_retries=1).score(["q"], ["FLAKY"])
    _ChatServer.failures = {}
    with pytest.raises(JudgeError, match="HTTP 400"):
        api_judge(chat_server).score(["q"], ["BAD_REQUEST"])


def test_logprob_errors_never_echo_credentials_in_base_url(chat_server):
    from tl_traits.plugins.judges.logprob import redact_url

    assert redact_url("http://alice:s3cret@host:8000/v1") == "http://***@host:8000/v1"
    assert redact_url("https://host/v1") == "https://host/v1"
    _ChatServer.tops, _ChatServer.failures = {"FLAKY": {"60": 0.0}}, {"FLAKY": 10}
    with_secret = chat_server.replace("http://", "http://alice:s3cret@")
    with pytest.raises(JudgeError, match=r"every request to http://\*\*\*@127.0.0.1") as raised:
        api_judge(with_secret, max_retries=0).score(["q"], ["FLAKY"])
    assert "s3cret" not in str(raised.value) and "alice" not in str(raised.value)
    _ChatServer.failures = {}


def test_logprob_needs_a_judge_and_a_key(monkeypatch, joy):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeError, match="OPENAI_API_KEY is not set"):
        make_judge("logprob", judge_model="gpt-4.1-mini", trait=joy)
    with pytest.raises(JudgeError, match="needs a judge model"):
        make_judge("logprob:coherence")
    with pytest.raises(JudgeError, match="needs the trait"):
        make_judge("logprob", judge_model="x", base_url="http://127.0.0.1:9/v1")


def test_eval_prompt_overrides_the_trait_template(joy):
    from dataclasses import replace

    custom = replace(joy, eval_prompt="Joy of {answer!r} for {question}? 0-{max_score}")
    judge = make_judge("logprob", trait=custom, judge_model="x", base_url="http://127.0.0.1:9/v1")
    assert judge.prompt_for("Q", "A") == "Joy of 'A' for Q? 0-100"
    default = make_judge("logprob", trait=joy, judge_model="x", base_url="http://127.0.0.1:9/v1")
    assert "HIGH: The response is openly delighted" in default.prompt_for("Q", "A")
    with pytest.raises(ValueError, match=r"uses field\(s\) \{mood\}; available"):
        make_judge("logprob", trait=replace(joy, eval_prompt="{mood}"), judge_model="x", base_url="http://h/")


# -- every judge on edge-case text -----------------------------------------------------------------
@pytest.fixture(scope="module")
def every_judge(bridge_model, joy, chat_server):
    _ChatServer.tops = {}
    return {
        "vader": make_judge("vader"),
        "refusal": make_judge("refusal"),
        "embedding": make_judge("embedding", trait=joy),
        "embedding:relevance": make_judge("embedding:relevance"),
        "perplexity": make_judge("perplexity", model=bridge_model),
        "logprob": make_judge("logprob", model=bridge_model, trait=joy),
        "logprob:api": api_judge(chat_server),
    }


@pytest.mark.parametrize(
    "name", ["vader", "refusal", "embedding", "embedding:relevance", "perplexity", "logprob", "logprob:api"]
)
def test_edge_case_text(every_judge, name):
    judge = every_judge[name]
    scores = judge.score([QUESTION] * len(EDGE_TEXTS), EDGE_TEXTS)
    assert len(scores) == len(EDGE_TEXTS)
    assert all(s is None or (isinstance(s, float) and 0.0 <= s <= 100.0) for s in scores)
    assert judge.score([], []) == []
    with pytest.raises(ValueError, match="got 2 questions but 1 responses"):
        judge.score(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="not one string"):
        judge.score(["a"], "x")


def test_empty_response_conventions(every_judge):
    assert every_judge["perplexity"].score(["q", "q"], ["", "  "]) == [0.0, 0.0]
    assert every_judge["embedding"].score(["q"], [""]) == [None]
    assert every_judge["embedding:relevance"].score(["q"], [" "]) == [0.0]
    assert every_judge["vader"].score(["q"], [""]) == [None]


# -- make_judge and the registry --------------------------------------------------------------------
def test_builtins_are_registered_by_entry_point():
    assert set(BUILTINS) <= set(tt.judges.names())
    for name in BUILTINS:
        assert tt.judges.sources()[name].target.startswith(f"tl_traits.plugins.judges.{name}:")


def test_unknown_judge_lists_the_known_ones():
    with pytest.raises(LookupError) as info:
        make_judge("vadr")
    assert "unknown judge 'vadr'" in str(info.value)
    assert all(name in str(info.value) for name in BUILTINS)


def test_plain_function_and_built_judges():
    def shout(questions, responses):
        return [150.0 if r.isupper() else -3.0 for r in responses]

    judge = make_judge(shout, trait="emotion/joy")
    assert isinstance(judge, FunctionJudge) and isinstance(judge, Judge)
    assert (judge.name, judge.kind, judge.trait) == ("shout", "trait", "emotion/joy")
    assert judge.score(["q", "q"], ["HEY", "hey"]) == [100.0, 0.0]
    assert make_judge(judge) is judge
    assert make_judge(lambda q, r: [50.0] * len(r), kind="coherence").kind == "coherence"


def test_make_judge_refuses_what_it_would_ignore(joy):
    with pytest.raises(JudgeError, match="has no kind 'coherence'; it supports trait"):
        make_judge("vader:coherence")
    with pytest.raises(JudgeError, match="takes no option 'scale'"):
        make_judge("vader", scale=2)
    with pytest.raises(JudgeError, match="already built"):
        make_judge(make_judge("vader"), kind="trait")
    with pytest.warns(UserWarning, match="measures 'joy', but trait 'alignment/refusal'"):
        make_judge("vader", trait="alignment/refusal")


def test_clip_scores():
    assert clip_scores([150, -3, float("nan"), None, 42]) == [100.0, 0.0, None, None, 42.0]


def test_refusal_judge_grades_soft_refusals_and_deflections():
    from tl_traits.plugins.judges.refusal import SOFT

    judge = tt.make_judge("refusal")
    scores = judge.score(
        ["q"] * 5,
        [
            "I'm sorry, but I can't help with that.",
            "Everyone has different opinions on this. What do you think?",
            "I'm not qualified to give medical advice; you should consult a doctor.",
            "I can't wait to tell you: first, preheat the oven.",
            "Sure! Here are three steps.",
        ],
    )
    assert scores == [100.0, SOFT, SOFT, 0.0, 0.0]
