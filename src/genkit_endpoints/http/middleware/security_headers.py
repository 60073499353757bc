# SPDX-License-Identifier: Apache-2.0
"""Security headers on every response, including errors produced by other middleware.

The header values come from the ``secure`` library, built once at start-up and kept as
encoded pairs, so a response costs one scan of its (few) headers and one list append. Rules:

* CSP ``default-src 'none'``: the API serves JSON and SSE, never a page. In DEBUG it is
  relaxed just enough for the docs UIs (Swagger/Redoc/Stoplight load scripts and styles
  from a CDN).
* HSTS only on https — the scheme the server saw, or the one a trusted proxy reported
  (``ProxyHeadersMiddleware`` rewrites ``scope["scheme"]``). HSTS over plain http is
  ignored by browsers and would be misleading.
* ``Cache-Control: no-store`` unless the response chose a policy itself: SSE responses
  say ``no-cache`` and must keep it.
* A ``Server`` header set below us is removed (servers are configured not to send one;
  granian 2.8 adds its own after us and cannot be stopped).
"""

from __future__ import annotations

from secure import (
    CacheControl,
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    CrossOriginResourcePolicy,
    PermissionsPolicy,
    ReferrerPolicy,
    Secure,
    StrictTransportSecurity,
    XContentTypeOptions,
    XFrameOptions,
)

from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

_CDNS = ("https://cdn.jsdelivr.net", "https://unpkg.com")
_CACHE_CONTROL = b"cache-control"
_SERVER = b"server"


def _csp(debug: bool) -> ContentSecurityPolicy:
    if not debug:
        return ContentSecurityPolicy().default_src("'none'").frame_ancestors("'none'")
    return (
        ContentSecurityPolicy()
        .default_src("'self'")
        .script_src("'self'", "'unsafe-inline'", *_CDNS)
        .style_src("'self'", "'unsafe-inline'", "https://fonts.googleapis.com", *_CDNS)
        .font_src("'self'", "https://fonts.gstatic.com", *_CDNS)
        .img_src("'self'", "data:", "https://fastapi.tiangolo.com", *_CDNS)
        .worker_src("'self'", "blob:")
        .connect_src("'self'")
        .frame_ancestors("'none'")
    )


def security_header_items(
    *, debug: bool, hsts_max_age: int
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(headers for every response, headers for https responses only), lower-case names."""
    policy = Secure(
        csp=_csp(debug),
        xcto=XContentTypeOptions(),
        xfo=XFrameOptions().deny(),
        referrer=ReferrerPolicy().no_referrer(),
        permissions=PermissionsPolicy().geolocation().camera().microphone().payment().usb(),
        coop=CrossOriginOpenerPolicy().same_origin(),
        corp=CrossOriginResourcePolicy().same_origin(),
        cache=CacheControl().no_store(),
    )
    always = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in policy.header_items()
        if name.lower() != "cache-control"  # added only when the response has none
    ]
    https: list[tuple[bytes, bytes]] = []
    if hsts_max_age > 0:
        hsts = StrictTransportSecurity().max_age(hsts_max_age).include_subdomains()
        https.append((b"strict-transport-security", hsts.header_value.encode("latin-1")))
    return always, https


class SecurityHeadersMiddleware:
    def __init__(
        self, app: ASGIApp, *, debug: bool = False, hsts_max_age: int = 31_536_000
    ) -> None:
        self.app = app
        self.always, https = security_header_items(debug=debug, hsts_max_age=hsts_max_age)
        self.with_hsts = self.always + https  # built once, not per https request
        self.no_store = (_CACHE_CONTROL, b"no-store")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.with_hsts if scope.get("scheme") == "https" else self.always

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                cached = False
                for pair in message.get("headers", ()):
                    name = pair[0].lower()
                    if name == _SERVER:
                        continue
                    if name == _CACHE_CONTROL:
                        cached = True
                    headers.append(pair)
                headers += extra
                if not cached:
                    headers.append(self.no_store)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
