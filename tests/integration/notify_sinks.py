#!/usr/bin/env python3
"""Local stand-ins for Slack, PagerDuty, Statuspage and an SMTP server, for test_notify.sh.

    notify_sinks.py DIR     listens on 127.0.0.1 (ports chosen by the system), writes
                            DIR/http.port and DIR/smtp.port, and appends one JSON line per
                            request to DIR/requests.jsonl (when it arrived, and what was answered)

How the Slack stand-in answers depends on the rollout named in the message, so one relay can
meet every kind of endpoint: fail5xx -> 503 always; slowpoke -> 503 after 3 s (the relay's
timeout is shorter); refuse -> 400; ratelimit -> 429 with Retry-After: 1 the first time, then
200; slowok -> 200 after 0.5 s (so that a kill -9 can land during a request); else 200.
"""
import json, os, socketserver, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out_dir = sys.argv[1]
lock = threading.Lock()
seen = {}
incidents = [0]


def record(entry):
    with lock:
        with open(os.path.join(out_dir, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode()
        nid = self.headers.get("X-Canary-Notification-Id", "")
        entry = {"t": time.time(), "method": self.command, "path": self.path, "id": nid,
                 "auth": self.headers.get("Authorization", ""), "body": body}
        status, reply, headers, delay = 200, "ok", [], 0
        if self.path.startswith("/slack"):
            with lock:
                seen[nid] = seen.get(nid, 0) + 1
                first = seen[nid] == 1
            if "fail5xx" in body:
                status, reply = 503, "upstream down"
            elif "slowpoke" in body:  # answers after the relay gave up: never a success
                status, reply, delay = 503, "too late", 3
            elif "refuse" in body:
                status, reply = 400, "invalid_payload"
            elif "ratelimit" in body and first:
                status, reply, headers = 429, "rate_limited", [("Retry-After", "1")]
            elif "slowok" in body:
                delay = 0.5
        elif self.path == "/v2/enqueue":
            status, reply = 202, json.dumps({"status": "success", "message": "Event processed"})
        elif self.path.startswith("/v1/pages/"):
            if self.command == "POST":
                with lock:
                    incidents[0] += 1
                    iid = "inc%d" % incidents[0]
                status, reply = 201, json.dumps({"id": iid, "status": "investigating"})
            else:
                status, reply = 200, json.dumps({"id": self.path.rsplit("/", 1)[-1]})
        else:
            status, reply = 404, "no such endpoint"
        entry["status"] = status
        record(entry)  # before any delay: a request that arrived counts, answered or not
        if delay:
            time.sleep(delay)
        try:
            self.answer(status, reply, headers)
        except OSError:
            pass

    do_POST = do_PATCH = do_PUT = handle_any


class Smtp(socketserver.StreamRequestHandler):
    def handle(self):
        def say(line):
            self.wfile.write((line + "\r\n").encode())
            self.wfile.flush()

        say("220 sink ESMTP")
        mail_from, rcpt = "", []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                say("250 sink")
            elif verb == "MAIL":
                mail_from, rcpt = cmd[10:].strip(), []
                say("250 ok")
            elif verb == "RCPT":
                rcpt.append(cmd[8:].strip())
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    data.append(l.decode(errors="replace"))
                record({"t": time.time(), "method": "SMTP", "path": "smtp", "from": mail_from,
                        "to": rcpt, "body": "".join(data), "status": 250})
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


class SmtpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
http.daemon_threads = True
smtp = SmtpServer(("127.0.0.1", 0), Smtp)
threading.Thread(target=smtp.serve_forever, daemon=True).start()
for name, srv in (("http.port", http), ("smtp.port", smtp)):
    with open(os.path.join(out_dir, name + ".tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
http.serve_forever()
