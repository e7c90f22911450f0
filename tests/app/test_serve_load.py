"""The dashboard under load, served by uvicorn on 127.0.0.1 (the tiny model): 20 concurrent chats all complete, none is
lost or mixed with another, and a client that disconnects mid-stream does not hold up the next."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest

from tl_traits.core.generation import generate

pytest.importorskip("uvicorn", reason="the dashboard needs the [serve] extra (starlette, uvicorn)")
httpx = pytest.importorskip("httpx", reason="the load test talks to the server with httpx (dev extra)")

CHATS = 20
TOKENS = 12


async def one_chat(client, url: str, prompt: str) -> dict:
    """One streamed chat: its text, each token's values, when its first token came and where it queued."""
    started = time.perf_counter()
    out: dict = {"prompt": prompt, "tokens": [], "values": [], "first": None, "done": None, "ahead": None}
    async with client.stream("POST", f"{url}/api/chat", json={"message": prompt, "max_new_tokens": TOKENS}) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event["type"] == "queued":
                out["ahead"] = event["ahead"]
            elif event["type"] == "token":
                out["first"] = out["first"] or time.perf_counter() - started
                out["tokens"].append((event["i"], event["text"]))
            elif event["type"] == "values":
                out["values"].append(event["values"])
            elif event["type"] == "done":
                out["done"] = event
            else:
                assert event["type"] == "start", event
    out["seconds"] = time.perf_counter() - started
    return out


def run_chats(url: str, prompts: list[str]) -> list[dict]:
    async def all_at_once() -> list[dict]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*(one_chat(client, url, p) for p in prompts))

    return asyncio.run(all_at_once())


def test_twenty_concurrent_chats_complete_and_none_is_mixed_with_another(live_server, dashboard):
    prompts = [f"Tell me one thing about the number {i}." for i in range(CHATS)]
    alone = {p: run_chats(live_server.url, [p])[0] for p in prompts}  # each on its own first: the reference
    started = time.perf_counter()
    together = run_chats(live_server.url, prompts)
    wall = time.perf_counter() - started
    assert len(together) == CHATS and all(r["done"] is not None for r in together)  # none lost
    for result in together:
        reference = alone[result["prompt"]]
        assert result["done"]["text"] == reference["done"]["text"]  # its own answer, not another's
        assert result["values"] == reference["values"]  # the projections of its own tokens, to the last digit
        assert [i for i, _ in result["tokens"]] == list(range(len(result["tokens"])))  # in order, none dropped
    assert together[0]["done"]["text"] == generate(dashboard.model, [prompts[0]], max_new_tokens=TOKENS)[0]
    firsts = {json.dumps(alone[p]["values"][0]) for p in prompts}
    assert len(firsts) == CHATS  # every prompt's stream is distinguishable, so a mix-up could not pass unseen
    assert sorted(r["ahead"] for r in together) == list(range(CHATS))  # one model, every request queued in turn
    first_token = sorted(r["first"] for r in together)
    print(
        f"\n{CHATS} concurrent chats of {TOKENS} tokens (tiny model): {wall:.2f} s in all; first token after "
        f"{statistics.median(first_token):.2f} s (median), {first_token[-1]:.2f} s (last in the queue)"
    )


def test_a_client_that_leaves_mid_stream_frees_the_model_at_the_next_token(live_server, dashboard):
    before = dashboard.status()
    with httpx.Client(timeout=120) as client:
        with client.stream(
            "POST", f"{live_server.url}/api/chat", json={"message": "Tell me a very long story.", "max_new_tokens": 200}
        ) as reply:
            seen = 0
            for line in reply.iter_lines():
                seen += json.loads(line)["type"] == "token"
                if seen == 3:
                    break  # and leave: closing the stream closes the connection
        started = time.perf_counter()
        nxt = client.post(f"{live_server.url}/api/chat", json={"message": "Hi there", "max_new_tokens": 4})
        waited = time.perf_counter() - started
    last = [json.loads(line) for line in nxt.text.splitlines() if line.strip()][-1]
    assert last["type"] == "done" and last["text"] == generate(dashboard.model, ["Hi there"], max_new_tokens=4)[0]
    deadline = time.monotonic() + 10
    while dashboard.status()["cancelled"] == before["cancelled"] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = dashboard.status()
    assert after["cancelled"] == before["cancelled"] + 1  # the abandoned answer stopped early ...
    # ... after a few of its 200 tokens (two events each), not all of them; the next chat adds about ten
    assert after["events"] - before["events"] < 100, after["events"] - before["events"]
    assert not after["busy"] and after["queued"] == 0
    print(f"\nafter a client left mid-stream, the next chat finished in {waited:.2f} s")
