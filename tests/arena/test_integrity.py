"""Unit checks of the integrity helpers: token buckets refill, the body limit also stops chunked uploads,
pseudonyms are salted."""
from __future__ import annotations

import asyncio

from mova_eval.arena.integrity import BodyLimit, Keys, Limit, RateLimiter


def test_token_bucket_refills_at_the_configured_rate():
    rl = RateLimiter(Limit(2, 10.0))  # 2 per 10 s
    assert rl.hit("v", now=0.0) == 0.0 and rl.hit("v", now=0.0) == 0.0
    wait = rl.hit("v", now=0.0)
    assert abs(wait - 5.0) < 1e-9
    assert rl.hit("v", now=4.0) > 0
    assert rl.hit("v", now=5.01) == 0.0
    assert rl.hit("other", now=5.01) == 0.0  # keys are independent


def test_body_limit_stops_chunked_bodies_without_content_length():
    seen = {}

    async def app(scope, receive, send):
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        seen["body"] = len(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(3)]
    chunks[-1]["more_body"] = False
    sent = []

    async def receive():
        return chunks.pop(0)

    async def send(msg):
        sent.append(msg)

    asyncio.run(BodyLimit(app, 1000)({"type": "http", "headers": []}, receive, send))
    assert "body" not in seen and sent[0]["status"] == 413


def test_pseudonyms_depend_on_the_salt_and_kind():
    a, b = Keys("secret", "salt-1"), Keys("secret", "salt-2")
    assert a.pseudonym("127.0.0.1", "ip") != b.pseudonym("127.0.0.1", "ip")
    assert a.pseudonym("x", "ip") != a.pseudonym("x", "voter")
    assert a.pseudonym("x", "ip") == Keys("other-secret", "salt-1").pseudonym("x", "ip")
    vid = a.voter_id(a.new_voter_cookie())
    assert vid and a.voter_id(b.new_voter_cookie()) is not None  # same secret signs both
    assert Keys("different", "salt-1").voter_id(a.new_voter_cookie()) is None
    assert a.check_csrf(vid, a.csrf_token(vid)) and not a.check_csrf(vid, a.csrf_token(vid + "0"))


def test_rate_limiter_memory_is_bounded():
    rl = RateLimiter(Limit(5, 1.0))
    rl.max_keys = 100
    for i in range(1000):
        rl.hit(f"k{i}", now=float(i))  # every older bucket has refilled by the next call
    assert len(rl._buckets) <= 101
