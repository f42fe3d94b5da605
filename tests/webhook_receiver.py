"""A webhook receiver for tests, on loopback: records each POST (path, headers, body) as one JSON line, then
answers STATUS (default 200) after DELAY seconds (default 0: a slow receiver works before it answers).
Run: python tests/webhook_receiver.py PORT LOG [STATUS [DELAY]]"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # (a slow answer holds no other)

port, log_path = int(sys.argv[1]), sys.argv[2]
status = int(sys.argv[3]) if len(sys.argv) > 3 else 200
delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(log_path, "a") as log:
            log.write(json.dumps({"path": self.path, "status": status, "headers": dict(self.headers),
                                  "body": body.decode()}) + "\n")
            log.flush()
            os.fsync(log.fileno())
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("ready", flush=True)
server.serve_forever()
