#!/usr/bin/env python3
"""A plain TCP upload receiver in the assignment's style, for one connection:
read until the client closes, save the bytes, close. Prints the port it
listens on (on 127.0.0.1) as its first line.

usage: plain_receiver.py <OUT-FILE>
"""
import socket
import sys

out = sys.argv[1]
with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    listener.settimeout(20)
    conn, _ = listener.accept()
    conn.settimeout(20)
    with conn, open(out, "wb") as f:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            f.write(data)
