"""A fake AWS at the HTTP layer: S3 GetObject, SSM GetParametersByPath, SES v2 SendEmail, DynamoDB,
Secrets Manager GetSecretValue.

Run as its own process (`python bench/fakeaws.py --mails DIR --aliases FILE`), so that its CPU does not
count against the measured process. It prints the port it listens on (127.0.0.1) and serves until
killed. botocore in the measured process still serialises, signs, sends and parses every call; this
server answers with the least work a correct reply needs, the same for the forwarder and the floor.

S3 keys are `<anything>/<name>.<n>`: the object is `<mails>/<name>.eml`, whatever `n` is, so that every
benchmarked message can have its own SES message id (and idempotency key) without storing copies.
`GET /_bench/stats` returns the request counts, `POST /_bench/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_SES_SEND = "/v2/email/outbound-emails"


class FakeAws:
    """The state behind the server: stored mails (read once, kept in memory), aliases, counters."""

    def __init__(self, mails: Path, aliases: dict[str, str]) -> None:
        self.mails = mails
        self.aliases = aliases
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.sent_bytes = 0

    def count(self, operation: str, sent: int = 0) -> None:
        with self._lock:
            self.counts[operation] += 1
            self.sent_bytes += sent

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "sent_bytes": self.sent_bytes}

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.sent_bytes = 0

    def object(self, key: str) -> bytes | None:
        name = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        with self._lock:
            if name not in self._objects:
                path = self.mails / f"{name}.eml"
                if not path.is_file():
                    return None
                self._objects[name] = path.read_bytes()
            return self._objects[name]

    def parameters(self, path: str) -> list[dict[str, Any]]:
        base = path.rstrip("/")
        return [
            {"Name": f"{base}/{alias}", "Type": "StringList", "Value": value, "Version": 1, "DataType": "text"}
            for alias, value in sorted(self.aliases.items())
        ]


class Handler(BaseHTTPRequestHandler):
    """One request: S3 by method and path, SSM and DynamoDB by X-Amz-Target, SES v2 by path."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects from AWS
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the body
    # until the client's delayed ACK (40 ms), which would swamp every small-mail measurement.
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the benchmark reads the counters instead."""

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, body: Any, content_type: str = "application/x-amz-json-1.1", status: int = 200) -> None:
        self._reply(status, json.dumps(body).encode(), content_type)

    def _body(self) -> bytes:
        # The whole request body is read, as AWS would, before answering.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path == "/_bench/stats":
            self._json(fake.stats(), "application/json")
            return
        bucket, _, key = self.path.lstrip("/").partition("/")
        data = fake.object(key.split("?", 1)[0]) if bucket and key else None
        if data is None:
            fake.count("s3:NoSuchKey")
            error = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
            self._reply(404, error, "application/xml")
            return
        fake.count("s3:GetObject")
        self._reply(
            200,
            data,
            "message/rfc822",
            {"ETag": '"bench"', "Last-Modified": "Tue, 24 Nov 2026 09:12:44 GMT", "Accept-Ranges": "bytes"},
        )

    do_HEAD = do_GET

    def do_POST(self) -> None:
        fake = self.server.fake
        body = self._body()
        target = self.headers.get("X-Amz-Target", "")
        if self.path == "/_bench/reset":
            fake.reset()
            self._json({}, "application/json")
        elif self.path == _SES_SEND:
            fake.count("sesv2:SendEmail", len(body))
            self._json({"MessageId": f"bench-{uuid.uuid4().hex}"}, "application/json")
        elif target == "AmazonSSM.GetParametersByPath":
            fake.count("ssm:GetParametersByPath")
            self._json({"Parameters": fake.parameters(json.loads(body)["Path"])})
        elif target == "secretsmanager.GetSecretValue":
            # The signing key of reply addresses and links: created long ago, so no previous version is read.
            fake.count("secretsmanager:GetSecretValue")
            secret = {"Name": "bench-link-key", "SecretString": "bench-signing-key-0123456789abcdef"}
            self._json({**secret, "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.6e9})
        elif target.startswith("DynamoDB_20120810."):
            operation = target.partition(".")[2]
            fake.count(f"dynamodb:{operation}")
            self._json({}, "application/x-amz-json-1.0")
        else:
            fake.count("unknown")
            self._json({"__type": "UnknownOperationException", "message": target or self.path}, status=400)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAws) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fake = fake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=Path, required=True, help="directory of <name>.eml objects")
    parser.add_argument("--aliases", type=Path, required=True, help="JSON object: alias -> comma-separated members")
    args = parser.parse_args(argv)
    server = Server(FakeAws(args.mails, json.loads(args.aliases.read_text())))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
