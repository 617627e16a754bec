"""A stand-in for a platform service, run by the supervisor tests as `python -m fake_service`.

Serves GET /health on HTTP_PORT with a JSON body {"pid", "grandchild", "marker"}.
Environment knobs:
  FAKE_EXIT_CODE        exit at once with this code (after printing a line)
  FAKE_HEALTH_STATUS    status code of /health (default 200)
  FAKE_GRANDCHILD=1     start a `sleep` child first (to check process-group kills)
  FAKE_MARKER           echoed in the /health body
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    exit_code = os.environ.get("FAKE_EXIT_CODE")
    if exit_code is not None:
        print(f"fake service failing on purpose with code {exit_code}", file=sys.stderr)
        sys.exit(int(exit_code))

    grandchild = None
    if os.environ.get("FAKE_GRANDCHILD") == "1":
        grandchild = subprocess.Popen(["sleep", "600"])
    body = json.dumps(
        {
            "pid": os.getpid(),
            "grandchild": grandchild.pid if grandchild else None,
            "marker": os.environ.get("FAKE_MARKER", ""),
        }
    ).encode()
    status = int(os.environ.get("FAKE_HEALTH_STATUS", "200"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status if self.path == "/health" else 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["HTTP_PORT"])), Handler)
    print(f"fake service listening on {server.server_address}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
