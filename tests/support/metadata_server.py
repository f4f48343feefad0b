"""A loopback HTTP server replaying a cloud's documented metadata responses, with that
cloud's header rules: IMDSv2 answers 401 without a session token, Azure 400 without
`Metadata: true`, GCP 403 without `Metadata-Flavor: Google`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

AWS_TOKEN = "AQAEAFake-imdsv2-session-token=="


class MetadataServer:
    def __init__(self, provider: str, responses: dict[str, Any]) -> None:
        self.provider = provider
        self.responses = responses
        self.requests: list[tuple[str, str]] = []  # (method, path)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_PUT(self) -> None:
                server.requests.append(("PUT", self.path))
                if (
                    server.provider == "aws"
                    and self.path == "/latest/api/token"
                    and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                ):
                    self._send(200, AWS_TOKEN)
                else:
                    self._send(400, "bad request")

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                status, body = server.answer(self.path, self.headers)
                self._send(status, body)

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                if server.provider == "gcp":  # Google's clients check it on every answer
                    self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @classmethod
    def from_file(cls, path: Path) -> MetadataServer:
        spec = json.loads(path.read_text())
        return cls(spec["provider"], spec["responses"])

    def answer(self, path: str, headers: Any) -> tuple[int, str]:
        if self.provider == "aws" and headers.get("X-aws-ec2-metadata-token") != AWS_TOKEN:
            return 401, ""
        if self.provider == "azure" and headers.get("Metadata") != "true":
            return 400, json.dumps({"error": "Bad request. Required metadata header not specified"})
        if self.provider == "gcp" and headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header."
        key = path if path in self.responses else path.split("?", 1)[0]
        if key not in self.responses:
            return 404, "not found"
        body = self.responses[key]
        return 200, body if isinstance(body, str) else json.dumps(body)

    def __enter__(self) -> MetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
