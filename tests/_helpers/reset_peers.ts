/**
 * Connections that a peer resets (RST) while they wait in a server's accept
 * queue: established, some bytes sent, then `SO_LINGER 0` and close. Run
 * while the server process is stopped (SIGSTOP), they are still queued when
 * it resumes, and its `accept()` then fails for each of them.
 *
 * @module
 */

const SCRIPT = `
import socket, struct, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
peers = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x" * 1000)
    peers.append(s)
time.sleep(0.2)
for s in peers:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
`;

/**
 * Opens `count` connections to 127.0.0.1:`port` and resets them.
 *
 * @param port The server's port.
 * @param count How many.
 */
export async function resetQueuedConnections(
  port: number,
  count: number,
): Promise<void> {
  const result = await new Deno.Command("python3", {
    args: ["-c", SCRIPT, String(port), String(count)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(new TextDecoder().decode(result.stderr));
  }
}
