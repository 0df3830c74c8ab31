/**
 * Reading a UnixFS file in bounded memory, with the network kept busy. The exporter behind
 * `unixfs.cat` walks the whole DAG as fast as blocks arrive and queues every leaf for the reader
 * with no back-pressure (and, by default, asks for every child of a node at once): with a
 * reader slower than the network (a disk, a sandbox) it held up to the whole capsule in memory.
 * Here the file is read window by window (`offset`/`length`: the exporter fetches only that
 * range's blocks), several windows requested at once and handed to the reader in order.
 *
 * Two windows of eight (one read, one fetched) left the wire idle at every window's end: the
 * next window's wants went out only once the last block of the current one had arrived (want
 * debounce, a fresh bitswap stream, the peer's send debounce), once per 8 MiB. With
 * `FETCH_WINDOWS_IN_FLIGHT` windows requested at once the next wants are already out when a
 * window completes, for the same bound on blocks held (4 × 4 = 16, as 2 × 8 before).
 */
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import { UNIXFS_CHUNK_SIZE } from '../import/profile.ts'

/** Blocks (1 MiB leaves) in one window. */
export const FETCH_WINDOW_BLOCKS = 4
/** Windows requested at once (the one being read included): at most 16 blocks held. */
export const FETCH_WINDOWS_IN_FLIGHT = 4

export interface WindowedCatOptions {
  signal?: AbortSignal
  onProgress?: (event: { type: string; detail?: unknown }) => void
  /** Bytes in a window. Default `FETCH_WINDOW_BLOCKS` leaves. */
  windowBytes?: number
  /** Windows requested at once. Default {@link FETCH_WINDOWS_IN_FLIGHT}. */
  windowsInFlight?: number
}

async function collect(
  fs: UnixFS,
  cid: CID,
  offset: number,
  length: number,
  options: WindowedCatOptions,
): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = []
  for await (const chunk of fs.cat(cid, {
    offset,
    length,
    // the exporter's own fan-out within the window
    blockReadConcurrency: Math.ceil(length / UNIXFS_CHUNK_SIZE),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  } as Parameters<UnixFS['cat']>[1])) {
    chunks.push(chunk)
  }
  return chunks
}

/** The bytes of the file `cid`, in order, holding at most `windowsInFlight` windows. */
export async function* windowedCat(
  fs: UnixFS,
  cid: CID,
  options: WindowedCatOptions = {},
): AsyncGenerator<Uint8Array> {
  const window = options.windowBytes ?? FETCH_WINDOW_BLOCKS * UNIXFS_CHUNK_SIZE
  const depth = Math.max(1, options.windowsInFlight ?? FETCH_WINDOWS_IN_FLIGHT)
  // the root's declared size (the root is fetched once here, then local): no window is asked
  // past the end; a window shorter than asked still ends the file, whatever the root says
  const stat = await fs.stat(cid, options.signal ? { signal: options.signal } : {})
  const size = Number(stat.size)
  const inFlight: Promise<Uint8Array[]>[] = []
  let asked = 0
  let ended = false
  try {
    for (;;) {
      // the reader holds no window here: request up to `depth`
      while (!ended && inFlight.length < depth) {
        inFlight.push(collect(fs, cid, asked, window, options))
        asked += window
        ended = asked >= size
      }
      const next = inFlight.shift()
      if (!next) return
      const chunks = await next
      if (chunks.reduce((n, c) => n + c.byteLength, 0) < window) {
        // a short window is the end of the file, whatever the root declared
        for (const p of inFlight.splice(0)) p.catch(() => {})
        ended = true
      }
      yield* chunks
    }
  } finally {
    // a reader that stops early leaves no fetch running unobserved
    for (const p of inFlight) p.catch(() => {})
  }
}
