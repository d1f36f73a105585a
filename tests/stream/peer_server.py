#!/usr/bin/env python3
"""Minimal independent server for the streaming GET/PUT/DEL protocol (seed 004).

Written the way a typical student solution is: every message goes out with one
send(), text is read with recv(1024), the size with recv(8), no framing.
Used only by tests/stream_test.ts to check that sockkit interoperates.

usage: peer_server.py <port> [-v]     (serves the current directory)
"""
import os
import socket
import sys


def log(verbose, text):
    if verbose:
        print(text, flush=True)


def serve(conn, verbose):
    conn.send(b"READY")
    data = conn.recv(1024)
    if not data:
        return
    cmd = data.decode()
    log(verbose, "server receiving request: " + cmd)
    parts = cmd.split(" ", 1)
    if len(parts) != 2:
        conn.send(("ERROR: unknown command " + cmd).encode())
        return
    verb, name = parts
    if verb == "GET":
        if not os.path.isfile(name):
            conn.send(("ERROR: " + name + " does not exist").encode())
            return
        conn.send(b"OK")
        if conn.recv(1024) != b"READY":
            return
        size = os.path.getsize(name)
        conn.send(size.to_bytes(8, "big"))
        if conn.recv(1024) != b"OK":
            return
        log(verbose, "server sending " + str(size) + " bytes")
        with open(name, "rb") as f:
            while True:
                block = f.read(1024)
                if not block:
                    break
                conn.sendall(block)
        conn.send(b"DONE")
    elif verb == "PUT":
        try:
            f = open(name, "wb")
        except OSError:
            conn.send(("ERROR: unable to create file " + name).encode())
            return
        with f:
            conn.send(b"OK")
            size = int.from_bytes(conn.recv(8), "big")
            log(verbose, "server receiving " + str(size) + " bytes")
            conn.send(b"OK")
            remaining = size
            while remaining > 0:
                block = conn.recv(min(1024, remaining))
                if not block:
                    return
                f.write(block)
                remaining -= len(block)
        conn.send(b"DONE")
    elif verb == "DEL":
        if not os.path.exists(name):
            conn.send(("ERROR: " + name + " does not exist").encode())
            return
        log(verbose, "server deleting file " + name)
        try:
            os.remove(name)
        except OSError:
            conn.send(("ERROR: unable to delete " + name).encode())
            return
        conn.send(b"DONE")
    else:
        conn.send(("ERROR: unknown command " + cmd).encode())


def main():
    port = int(sys.argv[1])
    verbose = len(sys.argv) > 2 and sys.argv[2] == "-v"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(0)
    while True:
        log(verbose, "server waiting on port " + str(port))
        conn, addr = sock.accept()
        log(verbose, "server connected to client at " + addr[0] + ":" + str(addr[1]))
        try:
            serve(conn, verbose)
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
