"""A real SMTP server (aiosmtpd 1.4.6) for flagon-mail's tests.

It listens on ephemeral ports of 127.0.0.1 and prints one line:

    READY plain=P starttls=P starttls_wrong=P starttls_expired=P implicit=P blackhole=P drip=P busy=P

* plain: no TLS; AUTH offered in clear (so a test can see that the client never uses it).
* starttls: STARTTLS required, certificate for `localhost` (--cert/--key).
* starttls_wrong: STARTTLS required, certificate for another host (--wrong-cert/--wrong-key).
* starttls_expired: STARTTLS required, an expired certificate for `localhost`.
* implicit: TLS from the first byte, certificate for `localhost`.
* busy: greets with `421 4.3.2 busy` and hangs up.
* blackhole: the kernel completes the TCP handshake; nobody ever greets.
* drip: greets one byte per second (a slow-drip server).

Every accepted message is stored in --maildir as N.eml (the DATA as received, dot-unstuffed)
with N.json beside it (envelope sender and recipients). AUTH attempts are appended to
auth.log. Faults are chosen by the local part of an address, so tests never share state:

    MAIL FROM  mail-451-*, mail-550-*         that reply to MAIL
    RCPT TO    rcpt-451-*, rcpt-452-*, rcpt-552-*, rcpt-550-*, rcpt-553-*
               rcpt-once-451-*               451 the first time, then accepted
               slow-rcpt-*                   no reply for 60 s
    DATA       data-451-*, data-554-*, data-421-*   that reply after the final dot
               data-once-451-*               451 after the first DATA, then accepted
               stall-*                       no reply to the final dot for 60 s
               stall-once-*                  the first time: writes stalled-<id> and stalls;
                                             later: accepted

The server exits when its stdin closes (the test process ended).
"""

import argparse
import asyncio
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

SEEN = set()
COUNTER = [0]


def local(addr):
    return addr.split("@", 1)[0].lower()


def has(addrs, prefix):
    return any(local(a).startswith(prefix) for a in addrs)


def message_id(content):
    m = re.search(rb"^Message-ID:\s*(\S+)", content, re.M | re.I)
    return m.group(1).decode("ascii", "replace") if m else "none"


def encrypted(server, session):
    if session.ssl is not None:
        return True
    t = getattr(server, "transport", None)
    return t is not None and t.get_extra_info("ssl_object") is not None


def safe(s):
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)


class Handler:
    def __init__(self, maildir):
        self.maildir = maildir

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        lp = local(address)
        if lp.startswith("mail-451-"):
            return "451 4.3.0 MAIL deferred"
        if lp.startswith("mail-550-"):
            return "550 5.7.1 sender refused"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = local(address)
        for code, text in (
            ("451", "4.3.0 try later"),
            ("452", "4.5.3 too many recipients"),
            ("552", "5.5.3 too many recipients"),
            ("550", "5.1.1 no such user"),
            ("553", "5.1.3 bad address"),
        ):
            if lp.startswith("rcpt-%s-" % code):
                return "%s %s" % (code, text)
        if lp.startswith("rcpt-once-451-"):
            key = ("rcpt", address.lower())
            if key not in SEEN:
                SEEN.add(key)
                return "451 4.3.0 try later (once)"
        if lp.startswith("slow-rcpt-"):
            await asyncio.sleep(60)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpts = envelope.rcpt_tos
        content = envelope.original_content or b""
        mid = message_id(content)
        if has(rcpts, "data-451-"):
            return "451 4.3.0 DATA deferred"
        if has(rcpts, "data-554-"):
            return "554 5.6.0 rejected at DATA"
        if has(rcpts, "data-421-"):
            return "421 4.3.2 shutting down"
        if has(rcpts, "data-once-451-"):
            key = ("data", mid)
            if key not in SEEN:
                SEEN.add(key)
                return "451 4.3.0 DATA deferred (once)"
        if has(rcpts, "stall-once-"):
            marker = os.path.join(self.maildir, "stalled-" + safe(mid))
            if not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(mid)
                await asyncio.sleep(60)
                return "451 4.3.0 too late"
        elif has(rcpts, "stall-"):
            await asyncio.sleep(60)
            return "451 4.3.0 too late"
        COUNTER[0] += 1
        name = "%d-%d-%d" % (time.time_ns(), os.getpid(), COUNTER[0])
        tmp = os.path.join(self.maildir, "." + name)
        with open(tmp + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": rcpts, "message_id": mid,
                       "tls": encrypted(server, session)}, f)
        with open(tmp + ".eml", "wb") as f:
            f.write(content)
        os.rename(tmp + ".json", os.path.join(self.maildir, name + ".json"))
        os.rename(tmp + ".eml", os.path.join(self.maildir, name + ".eml"))
        return "250 2.0.0 queued as %s" % name


def authenticator(maildir):
    def auth(server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        with open(os.path.join(maildir, "auth.log"), "a") as f:
            f.write("%s tls=%s\n" % (user, encrypted(server, session)))
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"secret"
        return AuthResult(success=ok)
    return auth


def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def busy(reader, writer):
    writer.write(b"421 4.3.2 busy, try again later\r\n")
    await writer.drain()
    writer.close()


async def drip(reader, writer):
    try:
        for b in b"220 slow.example ESMTP dripping one byte per second" * 4:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(1)
    except Exception:
        pass
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--wrong-cert", required=True)
    p.add_argument("--wrong-key", required=True)
    p.add_argument("--expired-cert", required=True)
    p.add_argument("--expired-key", required=True)
    a = p.parse_args()
    os.makedirs(a.maildir, exist_ok=True)
    handler = Handler(a.maildir)
    auth = authenticator(a.maildir)
    good = context(a.cert, a.key)
    wrong = context(a.wrong_cert, a.wrong_key)
    expired = context(a.expired_cert, a.expired_key)
    loop = asyncio.get_running_loop()
    common = dict(authenticator=auth, hostname="localhost", data_size_limit=50 * 1024 * 1024)

    plain = await loop.create_server(
        lambda: SMTP(handler, auth_require_tls=False, **common), "127.0.0.1", 0)
    starttls = await loop.create_server(
        lambda: SMTP(handler, tls_context=good, require_starttls=True, **common), "127.0.0.1", 0)
    starttls_wrong = await loop.create_server(
        lambda: SMTP(handler, tls_context=wrong, require_starttls=True, **common), "127.0.0.1", 0)
    starttls_expired = await loop.create_server(
        lambda: SMTP(handler, tls_context=expired, require_starttls=True, **common), "127.0.0.1", 0)
    busy_server = await asyncio.start_server(busy, "127.0.0.1", 0)
    implicit = await loop.create_server(
        lambda: SMTP(handler, **common), "127.0.0.1", 0, ssl=good)
    dripper = await asyncio.start_server(drip, "127.0.0.1", 0)
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)

    def port(server):
        return server.sockets[0].getsockname()[1]

    print("READY plain=%d starttls=%d starttls_wrong=%d starttls_expired=%d implicit=%d "
          "blackhole=%d drip=%d busy=%d" % (
              port(plain), port(starttls), port(starttls_wrong), port(starttls_expired),
              port(implicit), hole.getsockname()[1], port(dripper), port(busy_server)), flush=True)

    done = asyncio.Event()

    def watch_stdin():
        sys.stdin.read()
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    await done.wait()


if __name__ == "__main__":
    asyncio.run(main())
