#!/usr/bin/env python3
"""A TCP proxy to the PostgreSQL server that can cut the network path the way a
partition does: nothing is forwarded any more, nothing is closed (no FIN, no
RST), so the client waits for replies that never come and the server's
backends wait for requests that never come.

    partition_proxy.py UPSTREAM_UNIX_SOCKET STATE_FILE [ADDRESS:PORT]

Listens on ADDRESS:PORT (default 127.0.0.1 and a free port), and writes the
port to STATE_FILE.port.
SIGUSR1 cuts the path (for the connections there are and for new ones: those
are left unaccepted), SIGUSR2 heals it. STATE_FILE says "ready N" once
listening, "cut N" once a cut is in force for N connections (every pump has
seen it), "healed N" after a heal: a test checks the fault was applied.
"""
import os
import selectors
import signal
import socket
import sys
import threading
import time

UPSTREAM, STATE = sys.argv[1], sys.argv[2]
LISTEN_ADDRESS, _, LISTEN_PORT = (sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1:0").rpartition(":")
cut = threading.Event()
lock = threading.Lock()
pairs = []


def write_file(path, text):
    """Whole or not at all, for a reader polling the file."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def say(state):
    with lock:
        n = len(pairs)
    write_file(STATE, f"{state} {n}\n")


def pump(client, server):
    """Forwards both ways until either side closes; while cut, reads nothing."""
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, server)
    sel.register(server, selectors.EVENT_READ, client)
    try:
        while True:
            if cut.is_set():
                time.sleep(0.05)
                continue
            for key, _ in sel.select(0.05):
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        with lock:
            pairs.remove((client, server))
        client.close()
        server.close()


def on_signal(signum, _frame):
    # Only the flag: the main loop says so (a handler taking `lock` could
    # deadlock with the main thread holding it).
    if signum == signal.SIGUSR1:
        cut.set()
    else:
        cut.clear()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LISTEN_ADDRESS, int(LISTEN_PORT)))
    listener.listen(64)
    write_file(STATE + ".port", f"{listener.getsockname()[1]}\n")
    listener.settimeout(0.05)
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)
    say("ready")
    said_cut = False
    while True:
        if cut.is_set() != said_cut:
            said_cut = cut.is_set()
            time.sleep(0.1)  # (each pump looks at the flag every 0.05 s)
            say("cut" if said_cut else "healed")
        if said_cut:
            time.sleep(0.05)
            continue
        try:
            client, _ = listener.accept()
        except (socket.timeout, InterruptedError):
            continue
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.connect(UPSTREAM)
        except OSError:
            client.close()
            continue
        client.settimeout(None)
        with lock:
            pairs.append((client, server))
        threading.Thread(target=pump, args=(client, server), daemon=True).start()


if __name__ == "__main__":
    main()
