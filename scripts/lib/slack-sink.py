#!/usr/bin/env python3
"""A local stand-in for a Slack incoming webhook, for scripts/demo.

    slack-sink.py PORT_FILE LOG.jsonl

Listens on 127.0.0.1 (a port the system picks, written to PORT_FILE), answers every POST with
200 "ok" as Slack does, appends each message to LOG.jsonl and prints it as #releases would show
it: the header, the text, the evidence fields and the commands to act.
"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port_file, log_path = sys.argv[1], sys.argv[2]


def render(msg):
    lines = []
    for b in msg.get("blocks", []):
        if b.get("type") == "header":
            lines.append("# " + b["text"]["text"])
        elif b.get("type") == "section" and "fields" in b:
            lines.append("  " + " | ".join(f["text"] for f in b["fields"]))
        elif b.get("type") == "section":
            lines.append("  " + b["text"]["text"])
        elif b.get("type") == "context":
            lines.append("  " + "  ".join(e["text"] for e in b["elements"]))
    return "\n".join(lines)


class Hook(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            msg = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with open(log_path, "a") as f:
            f.write(json.dumps(msg) + "\n")
        print(render(msg), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


server = HTTPServer(("127.0.0.1", 0), Hook)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
