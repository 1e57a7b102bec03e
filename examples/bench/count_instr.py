"""Sends COUNT keep-alive GET requests to one URL and checks every answer is 200.

Used by `run` to drive a server running under callgrind: the server's instruction count for
COUNT2 requests minus the count for COUNT1 requests, divided by the difference, is its cost
per request with start-up, warm-up and shutdown cancelled out.
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
