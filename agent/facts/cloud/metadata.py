"""HTTP access to one cloud's metadata service for one detection: the standard library only,
never a proxy, never a redirect, a timeout per request and a budget for the whole detection."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message

# A detection makes at most a handful of requests that answer in milliseconds on a real
# instance; a service that answers, but slowly, is given this many request timeouts in total.
BUDGET_TIMEOUTS = 3
MAX_BODY_BYTES = 1 << 20  # Azure's full instance document is a few KiB


class MetadataError(Exception):
    """The metadata service could not be used: `url` is what was asked, `reason` one line why."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = " ".join(reason.split())  # the warning it ends up in must stay one line
        super().__init__(f"{url}: {self.reason}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the AWS token header (and the host's identity questions) to
    # wherever the Location points; a metadata service never redirects, so a 3xx is an error.
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def base_url(endpoint: str) -> str:
    """The endpoint without a trailing slash; only http(s) URLs, so a mistyped seam cannot make
    urllib read a file:// path."""
    if not endpoint.startswith(("http://", "https://")):
        raise MetadataError(endpoint, "the metadata endpoint must be an http:// URL")
    return endpoint.rstrip("/")


class MetadataClient:
    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        # An explicit empty ProxyHandler replaces the default one that reads http_proxy: the
        # metadata service is link-local, a proxy would answer for (or about) another machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        self._timeout_s = timeout_s
        self._clock = clock
        self._deadline = clock() + BUDGET_TIMEOUTS * timeout_s

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        missing_ok: bool = False,
        expect_headers: Mapping[str, str] | None = None,
    ) -> str | None:
        """The response body as stripped text; None for a 404 when `missing_ok` (a key this
        instance does not have). Anything else that goes wrong raises MetadataError."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise MetadataError(url, f"gave up: the metadata service used up its {self._budget_s():g} s budget")
        # The socket timeout bounds connect and each read; the deadline bounds a slow trickle.
        timeout = min(self._timeout_s, remaining)
        req = urllib.request.Request(url, method=method, headers=dict(headers))
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                for name, value in (expect_headers or {}).items():
                    if resp.headers.get(name) != value:
                        raise MetadataError(url, f"the answer lacks the header {name}: {value}")
                body = self._read(resp, url)
        except urllib.error.HTTPError as e:
            if e.code == 404 and missing_ok:
                return None
            raise MetadataError(url, f"HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise MetadataError(url, self._why(e.reason)) from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            # OSError covers read timeouts and resets; ValueError a URL or header urllib refuses.
            raise MetadataError(url, self._why(e)) from None
        try:
            return body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise MetadataError(url, "the answer is not UTF-8 text") from None

    def _read(self, resp: http.client.HTTPResponse, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while chunk := resp.read1(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise MetadataError(url, f"the answer is larger than {MAX_BODY_BYTES} bytes")
            if self._clock() > self._deadline:
                raise MetadataError(url, f"the answer took longer than the {self._budget_s():g} s budget")
            chunks.append(chunk)
        return b"".join(chunks)

    def _why(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"no answer within {self._timeout_s:g} s"
        if isinstance(reason, http.client.HTTPException):
            return f"not an HTTP answer ({type(reason).__name__}: {reason})"
        return str(reason) or type(reason).__name__

    def _budget_s(self) -> float:
        return BUDGET_TIMEOUTS * self._timeout_s
