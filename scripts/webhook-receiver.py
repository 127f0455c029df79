#!/usr/bin/env python3
"""A webhook receiver for the local stack (`make run`): prints every event that arrives, checks
its Erasure-Signature as a real receiver must (HMAC-SHA256 over "<t>.<body>" with the secret,
at most five minutes old), and dedupes on the event id. Standard library only.

Usage: WEBHOOK_SECRET=whsec_... webhook-receiver.py --port PORT [--refuse N]
(--refuse N answers 503 to the first N requests, to show the notifier's retries.)
"""

import argparse
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECONDS = 300


def verify(secret, header, body, now=None):
    """The receiver's check: True when the signature is fresh and matches the body."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp = int(parts.get("t", "0"))
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        return False  # a replay, or a clock far off
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))


class Receiver(BaseHTTPRequestHandler):
    seen = set()
    refuse_left = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received = time.time()
        if Receiver.refuse_left > 0:
            Receiver.refuse_left -= 1
            print(f"refused with 503 (to show a retry): {self.headers.get('Erasure-Event-Id')}", flush=True)
            self.send_response(503)
            self.end_headers()
            return
        if not verify(os.environ["WEBHOOK_SECRET"], self.headers.get("Erasure-Signature", ""), body):
            print("REFUSED: bad or stale signature", flush=True)
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        duplicate = event["id"] in Receiver.seen
        Receiver.seen.add(event["id"])
        data = event["data"]
        print(
            f"{'duplicate ' if duplicate else ''}event {event['id']}: job {data['jobId']} "
            f"{data['jobStatus']}, tasksLeft {data['tasksLeft']}, signature ok, "
            f"{received * 1000 - event['createdAt']:.0f} ms after it settled",
            flush=True,
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--refuse", type=int, default=0)
    args = parser.parse_args()
    Receiver.refuse_left = args.refuse
    print(f"webhook receiver on http://127.0.0.1:{args.port}/hook", flush=True)
    HTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
