# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 framing attacks against every server: no smuggling, no ambiguity.

Each case is written to a fresh connection as raw bytes. The safe outcome is the server's
own parser refusing it (400, 501 or 505, no ``X-Request-ID``: the app never ran) and
closing the connection. Where a server instead resolves the message the way RFC 9112
allows (and so unambiguously), the case says so per server, with the rule it follows;
the server must then still never serve anything hidden in a body. After every case the
server answers a plain request normally.
"""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import (
    HARDENED_ENV,
    SERVED,
    Case,
    Outcome,
    Serve,
    case_params,
    check_case,
    refused,
)

JOKE = b"POST /tell-joke HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n"
HIDDEN = HEALTH + b"\r\n"  # if it were served, a second response would come
BODY_READ_TIMEOUT = float(HARDENED_ENV["BODY_READ_TIMEOUT"])

CASES = [
    Case("well_formed_control", JOKE + b"Content-Length: 2\r\n\r\n{}", SERVED),
    # --- Content-Length with Transfer-Encoding (CL.TE / TE.CL smuggling) -------------
    Case(
        "cl_and_te",
        JOKE + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(400),
        # RFC 9112 section 6.1: process by Transfer-Encoding alone, then close. granian does.
        {"granian": Outcome(200, app=True)},
    ),
    Case(
        "te_then_cl_hiding_a_request",
        JOKE
        + b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n0\r\n\r\n" % (5 + len(HIDDEN))
        + HIDDEN,
        refused(400),
        # granian: chunked wins (empty body, the defaults), then it closes unread.
        {"granian": Outcome(200, app=True)},
    ),
    Case(
        "cl_then_te_hiding_a_request",
        JOKE + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}" + HIDDEN,
        refused(400),
        # granian: chunked wins, "{}GET" is no chunk size → the app sees a disconnect.
        {"granian": Outcome(400, app=True)},
    ),
    # --- Content-Length values --------------------------------------------------------
    Case(
        "two_different_content_lengths",
        JOKE + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
        refused(400),
    ),
    Case(
        "two_equal_content_lengths",
        JOKE + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        refused(400),
        # RFC 9110 section 8.6: identical values may be taken as one; h11 and hyper do.
        {"hypercorn": SERVED, "granian": SERVED},
    ),
    Case(
        "content_length_list",
        JOKE + b"Content-Length: 2,2\r\n\r\n{}",
        refused(400),
        {"hypercorn": SERVED},  # h11: a list of identical values, as above
    ),
    Case("content_length_plus_sign", JOKE + b"Content-Length: +2\r\n\r\n{}", refused(400)),
    Case("content_length_negative", JOKE + b"Content-Length: -2\r\n\r\n{}", refused(400)),
    Case("content_length_hex", JOKE + b"Content-Length: 0x2\r\n\r\n{}", refused(400)),
    Case(
        "content_length_overflow",
        JOKE + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
        refused(400),
    ),
    # --- chunked encoding -------------------------------------------------------------
    Case(
        "chunk_size_not_hex",
        JOKE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        refused(400),
        {"granian": Outcome(400, app=True)},
    ),
    Case(
        "chunk_missing_crlf",
        JOKE + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        refused(400),
        {"granian": Outcome(400, app=True)},
    ),
    Case(
        "chunk_size_overflow",
        JOKE + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF2\r\n{}\r\n0\r\n\r\n",
        refused(400),
        {
            # h11 takes up to 20 hex digits: the body never ends, the app cuts it off.
            "hypercorn": Outcome(408, app=True),
            "granian": Outcome(400, app=True),
        },
        timeout=BODY_READ_TIMEOUT + 4,
    ),
    Case(
        "chunk_size_negative",
        JOKE + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
        refused(400),
        {"granian": Outcome(400, app=True)},
    ),
    Case(
        "chunk_lines_end_in_bare_lf",
        JOKE + b"Transfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n",
        refused(400),
        {
            # h11 waits for a CRLF that never comes: the app cuts the body off.
            "hypercorn": Outcome(408, app=True),
            "granian": Outcome(400, app=True),
        },
        timeout=BODY_READ_TIMEOUT + 4,
    ),
    # --- Transfer-Encoding values -----------------------------------------------------
    Case(
        "te_chunked_then_identity",
        JOKE + b"Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(400),
        {"hypercorn": refused(501)},  # an unsupported coding: 501 (RFC 9112 section 6.1)
    ),
    Case(
        "te_identity_then_chunked",
        JOKE + b"Transfer-Encoding: identity, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(501),
        {"granian": SERVED},  # hyper: chunked is last, so the body is chunked
    ),
    Case(
        "te_xchunked",
        JOKE + b"Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(501),
        {"granian": refused(400)},
    ),
    Case(
        "te_chunked_twice",
        JOKE
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(400),
        {"hypercorn": refused(501), "granian": SERVED},  # hyper: decoded once, as chunked
    ),
    Case(
        "te_space_before_colon",
        JOKE + b"Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(400),
    ),
    Case(
        "te_on_http_1_0",
        JOKE.replace(b"HTTP/1.1", b"HTTP/1.0")
        + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        refused(400),
    ),
    # --- header syntax ----------------------------------------------------------------
    Case(
        "obs_fold",
        JOKE + b"X-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
        refused(400),
        {"hypercorn": SERVED},  # h11 replaces the fold with a space (RFC 9112 section 5.2)
    ),
    Case(
        "obs_fold_hiding_te",
        JOKE + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 2\r\n\r\n{}",
        refused(400),
    ),
    Case(
        "bare_lf_line_endings",
        JOKE.replace(b"\r\n", b"\n") + b"Content-Length: 2\n\n{}",
        refused(400),
        # RFC 9112 section 2.2: a recipient MAY take a bare LF as a line end; h11 and hyper do.
        {"hypercorn": SERVED, "granian": SERVED},
    ),
    Case(
        "bare_cr_in_header", JOKE + b"X-A: a\rX-B: b\r\nContent-Length: 2\r\n\r\n{}", refused(400)
    ),
    Case(
        "nul_in_header_value",
        HEALTH + b"X-A: a\x00b\r\n\r\n",
        refused(400),
    ),
    Case(
        "nul_in_header_name",
        HEALTH + b"X-\x00A: b\r\n\r\n",
        refused(400),
    ),
    Case(
        "control_char_in_header_value",
        HEALTH + b"X-A: a\x01b\r\n\r\n",
        refused(400),
        # h11 rejects only CR, LF and NUL, as RFC 9110 section 5.5 requires; the app sees \x01.
        {"hypercorn": Outcome(200, app=True, closed=False)},
    ),
    Case(
        "space_in_header_name",
        HEALTH + b"X A: b\r\n\r\n",
        refused(400),
    ),
    # --- request line -----------------------------------------------------------------
    Case("bad_method_token", b"G(T /health HTTP/1.1\r\nHost: test\r\n\r\n", refused(400)),
    Case(
        "unknown_http_version",
        b"GET /health HTTP/9.9\r\nHost: test\r\n\r\n",
        refused(400),
        {"hypercorn": refused(505)},
    ),
    Case(
        "http2_preface_on_http1",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        refused(400),
        {"hypercorn": refused(505), "granian": Outcome(None)},  # HTTP/1.1 only everywhere
    ),
]

# granian hands the app ``http.disconnect`` when a chunked body is malformed; the error
# envelope answers that cut-short body with a 400 problem (the app's own 500 replaced)
# and closes, so no case here is a known defect any more.


@pytest.mark.parametrize(("case", "server_name"), case_params(CASES))
def test_framing_case_is_refused_or_resolved_unambiguously(
    serve: Serve, case: Case, server_name: str
) -> None:
    check_case(serve(server_name, **HARDENED_ENV), server_name, case)
