"""The SSE decoder and the HTTP error mapping, as pure functions."""

from __future__ import annotations

import time
from email.utils import formatdate

from hypothesis import given
from hypothesis import strategies as st

from llmnb import errors
from llmnb._http import SSEDecoder, SSEEvent, map_http_error, parse_retry_after

STREAM = (
    ": OPENROUTER PROCESSING\r\n\r\n"
    'data: {"a": 1}\n\n'
    "event: ping\ndata: first line\ndata: second line\n\n"
    "retry: 3000\nid: 7\ndata:no-space\n\n"
    "data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("first line\nsecond line", event="ping"),
    SSEEvent("no-space", id="7"),
    SSEEvent("[DONE]", id="7"),
]


def decode(pieces: list[str]) -> list[SSEEvent]:
    d = SSEDecoder()
    out = [e for p in pieces for e in d.feed(p)]
    return out + d.flush()


def test_decoder_reads_data_event_id_and_skips_comments():
    assert decode([STREAM]) == EXPECTED


def test_decoder_finishes_a_last_event_without_blank_line():
    assert decode(["data: tail"]) == [SSEEvent("tail")]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunk_boundaries_give_the_same_events(cuts):
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert decode(pieces) == EXPECTED


@given(st.text(alphabet="data: \r\n{}x[]", max_size=200), st.integers(min_value=1, max_value=7))
def test_crlf_and_cr_line_endings_are_split_consistently(text, size):
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    assert decode(pieces) == decode([text])


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": date}) or 0) <= 31


def test_status_mapping_to_typed_errors():
    cases = {
        401: errors.AuthenticationError,
        400: errors.InvalidRequestError,
        402: errors.InsufficientQuotaError,
        408: errors.LLMTimeoutError,
        409: errors.ProviderError,
        429: errors.RateLimitError,
        500: errors.ProviderError,
        503: errors.OverloadedError,
        529: errors.OverloadedError,
    }
    for status, cls in cases.items():
        err = map_http_error(status, {}, b"{}")
        assert type(err) is cls, status
        assert err.status == status


def test_spend_limit_429_is_quota_not_rate_limit():
    body = (
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"enforced_spend_limit_reached"}}'
    )
    assert isinstance(map_http_error(429, {}, body), errors.InsufficientQuotaError)


def test_gemini_style_status_envelope_is_read():
    body = (
        b'{"error":{"code":429,"message":"Quota exceeded for metric",'
        b'"status":"RESOURCE_EXHAUSTED"}}'
    )
    err = map_http_error(429, {"retry-after": "3"}, body)
    assert isinstance(err, errors.RateLimitError) and err.retry_after == 3.0
    assert "Quota exceeded" in str(err)


def test_body_excerpt_is_short_and_scrubbed():
    secret = "sk-secret-abcdef123456"
    body = ("x" * 1000 + secret).encode()
    err = map_http_error(
        500, {}, b'{"error": {"message": "bad key ' + secret.encode() + b'"}}', secrets=[secret]
    )
    assert secret not in str(err) and "[redacted]" in str(err)
    err = map_http_error(500, {}, body, secrets=[secret])
    assert err.body is not None and len(err.body) <= 301 and secret not in err.body


def test_not_found_points_at_model_and_base_url():
    err = map_http_error(404, {}, b"", model="gpt-9", base_url="http://h/v1")
    assert "'gpt-9'" in str(err) and "http://h/v1" in str(err)
