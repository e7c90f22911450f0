"""The dashboard benchmark's client, run in a process of its own as a browser is: it streams chats from a running
`tl-traits serve` (all at once) and prints each one's timings as JSON, measured from the moment its request is sent.

    python benchmarks/serve_client.py '{"url": "http://127.0.0.1:8765", "prompts": ["Hi"], "tokens": 16, "vectors": []}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def stream_chat(client: httpx.AsyncClient, url: str, prompt: str, tokens: int, vectors: list[str]) -> dict:
    started = time.perf_counter()
    first = last = None
    count = 0
    text = None
    body = {"message": prompt, "max_new_tokens": tokens, "vectors": vectors}
    async with client.stream("POST", f"{url}/api/chat", json=body) as reply:
        async for line in reply.aiter_lines():
            event = json.loads(line) if line.strip() else {}
            if event.get("type") == "token":
                count += 1
                last = time.perf_counter() - started
                first = first if first is not None else last
            elif event.get("type") == "done":
                text = event["text"]
            elif event.get("type") == "error":
                raise SystemExit(f"the server answered an error: {event['message']}")
    return {"first": first, "last": last, "total": time.perf_counter() - started, "tokens": count, "text": text}


async def chats(url: str, prompts: list[str], tokens: int, vectors: list[str]) -> list[dict]:
    async with httpx.AsyncClient(timeout=900) as client:
        return await asyncio.gather(*(stream_chat(client, url, p, tokens, vectors) for p in prompts))


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(chats(args["url"], args["prompts"], args["tokens"], args["vectors"]))))
