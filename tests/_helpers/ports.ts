/**
 * Free ports on 127.0.0.1, for executables that cannot be told port 0
 * (the file service needs the same number free for TCP and UDP), and the
 * port a helper process prints when it listens on port 0.
 *
 * @module
 */

/**
 * Finds a port number free for both TCP and UDP on 127.0.0.1 right now.
 *
 * @returns The port.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = tcp.addr.port;
    try {
      const udp = Deno.listenDatagram({
        hostname: "127.0.0.1",
        port,
        transport: "udp",
      });
      udp.close();
      return port;
    } catch {
      // UDP side taken: try another
    } finally {
      tcp.close();
    }
  }
  throw new Error("Cannot find a free TCP+UDP port");
}

/**
 * Reads the first line a child process prints (a helper that listens on
 * port 0 and prints its port), then stops reading its output.
 *
 * @param stdout The child's piped standard output.
 * @returns The line, trimmed (`""` when the output ended first).
 */
export async function firstLine(
  stdout: ReadableStream<Uint8Array>,
): Promise<string> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    await reader.cancel();
  }
  return text.split("\n")[0].trim();
}
