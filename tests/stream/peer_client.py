#!/usr/bin/env python3
"""Minimal independent client for the streaming GET/PUT/DEL protocol (seed 004).

Written the way a typical student solution is: every message goes out with one
send(), text is read with recv(1024), the size with recv(8), the OK after the
size with recv(2) and the final DONE of a GET with recv(4). Used only by
tests/stream_test.ts to check that sockkit interoperates.

usage: peer_client.py <host> <port> GET|PUT|DEL <file>   (in the current directory)
"""
import os
import socket
import sys


def fail_if_error(reply):
    if reply.startswith(b"ERROR"):
        print("server error: " + reply.decode()[len("ERROR: "):])
        sys.exit(1)


def main():
    host, port, verb, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if verb == "PUT" and not os.path.isfile(name):
        print("client error: " + name + " does not exist")
        sys.exit(1)
    sock = socket.create_connection((host, port))
    try:
        if sock.recv(1024) != b"READY":
            print("client error: no READY")
            sys.exit(1)
        sock.send((verb + " " + name).encode())
        if verb == "GET":
            reply = sock.recv(1024)
            fail_if_error(reply)
            sock.send(b"READY")
            size = int.from_bytes(sock.recv(8), "big")
            print("client receiving file " + name + " (" + str(size) + " bytes)")
            sock.send(b"OK")
            try:
                f = open(name, "wb")
            except OSError:
                print("client error: unable to create file " + name)
                sys.exit(1)
            with f:
                remaining = size
                while remaining > 0:
                    block = sock.recv(min(1024, remaining))
                    if not block:
                        print("client error: connection closed")
                        sys.exit(1)
                    f.write(block)
                    remaining -= len(block)
            reply = sock.recv(4)
        elif verb == "PUT":
            reply = sock.recv(1024)
            fail_if_error(reply)
            size = os.path.getsize(name)
            sock.send(size.to_bytes(8, "big"))
            # recv(2): for an empty file a server may send OK and DONE back to back
            reply = sock.recv(2)
            fail_if_error(reply)
            print("client sending file " + name + " (" + str(size) + " bytes)")
            with open(name, "rb") as f:
                while True:
                    block = f.read(1024)
                    if not block:
                        break
                    sock.sendall(block)
            reply = sock.recv(1024)
        else:
            print("client deleting file " + name)
            reply = sock.recv(1024)
        fail_if_error(reply)
        if reply == b"DONE":
            print("Complete")
        else:
            print("client error: unexpected reply " + repr(reply))
            sys.exit(1)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
