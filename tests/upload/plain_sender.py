#!/usr/bin/env python3
"""A plain TCP upload client in the assignment's style: connect, send the
file's bytes, close. It does not wait for the server to close first.

usage: plain_sender.py <HOST> <PORT> <FILE>
"""
import socket
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with socket.create_connection((host, port), timeout=10) as sock, open(path, "rb") as f:
    while True:
        chunk = f.read(1 << 16)
        if not chunk:
            break
        sock.sendall(chunk)
