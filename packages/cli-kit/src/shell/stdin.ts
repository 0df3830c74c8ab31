/** Reading a command's stdin whole (words piped in: `pi-node recover < words.txt`). */

/** The whole of `stdin` as UTF-8 text, trimmed; '' when there is none. */
export async function readStdinText(
  stdin: AsyncIterable<Buffer | string> | undefined,
): Promise<string> {
  const parts: Buffer[] = []
  for await (const c of stdin ?? []) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(parts).toString('utf8').trim()
}
