"""Local alert receivers: a Slack-style incoming webhook and an SMTP server, each keeping
what it received. The webhook checks what Slack would (JSON body with a ``text``; the bearer
token when one is configured); the SMTP server speaks enough RFC 5321 for smtplib (EHLO,
MAIL, RCPT, DATA, QUIT) and can fail the first N deliveries with 451."""

from __future__ import annotations

import email
import json
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servers.background import InBackground


class WebhookSink(InBackground):
    def __init__(self, token: str | None = None, fail_first: int = 0):
        self.token, self.fail_first = token, fail_first
        self.received: list[dict] = []
        self.rejected = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 200
                try:
                    payload = json.loads(body)
                    if not isinstance(payload, dict) or not str(payload.get("text", "")).strip():
                        status = 400
                except ValueError:
                    status = 400
                if sink.token and self.headers.get("Authorization") != f"Bearer {sink.token}":
                    status = 403
                if status == 200 and sink.fail_first > 0:
                    sink.fail_first -= 1
                    status = 503
                if status == 200:
                    sink.received.append(payload)
                else:
                    sink.rejected += 1
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"


class SmtpSink(InBackground):
    def __init__(self, fail_first: int = 0):
        self.messages: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_first = fail_first
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 ragrec-test-smtp ready")
                sender, recipients = None, []
                while True:
                    line = self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")
                    if not line:
                        return
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 ragrec-test-smtp")
                    elif verb == "MAIL":
                        sender, recipients = line.split(":", 1)[1].strip(" <>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        if sender is None:
                            self.reply("503 MAIL first")
                            continue
                        recipients.append(line.split(":", 1)[1].strip(" <>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        if not recipients:
                            self.reply("554 no valid recipients")
                            continue
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                        if sink.fail_first > 0:
                            sink.fail_first -= 1
                            self.reply("451 try again later")
                            continue
                        sink.messages.append(email.message_from_bytes(b"".join(data)))
                        sink.envelopes.append((sender, recipients))
                        self.reply("250 queued")
                    elif verb == "RSET":
                        sender, recipients = None, []
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
