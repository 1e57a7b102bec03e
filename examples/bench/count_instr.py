"""Sends COUNT keep-alive GET requests to one URL and checks every answer is 200.

Used by `run` to drive a server running under callgrind: once to warm it up with
instrumentation off, then again with it switched on, so the count over COUNT requests is their
cost and nothing else.
"""

import http.client
import sys

port, path, count, cookie = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
headers = {"Cookie": cookie} if cookie else {}
for _ in range(count):
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        sys.exit(f"{path}: status {res.status}")
conn.close()
