/**
 * Reading a UnixFS file in bounded memory. The exporter behind `unixfs.cat` walks the whole DAG
 * as fast as blocks arrive and queues every leaf for the reader with no back-pressure (and, by
 * default, asks for every child of a node at once): with a reader slower than the network (a
 * disk, a sandbox) it held up to the whole capsule in memory. Here the file is read window by
 * window (`offset`/`length`: the reader fetches only that range's blocks), with
 * `windowsAhead` windows requested beyond the one being read or waited for: at most
 * `FETCH_AHEAD_BLOCKS` blocks are held (ADR 0050), and the wire never waits for the reader to
 * ask for more while blocks are on their way (ADR 0057).
 */
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import { UNIXFS_CHUNK_SIZE } from '../import/sizes.ts'

/** Blocks (1 MiB leaves) in one window. */
export const FETCH_WINDOW_BLOCKS = 8
/**
 * Windows requested beyond the one being read or waited for (the next goes out once the reader
 * is done with a window, not once a window has come in). Smaller windows, more of them ahead, keep the
 * pipe fuller into a data folder (2 × 7: 0.35× against 0.24× in `bench/fetch.ts`), but the
 * exporter then also read the first leaf of the next window for each window (ADR 0050, not
 * landed as the default); the reader reads only a window's own leaves since ADR 0060.
 */
export const FETCH_WINDOWS_AHEAD = 1
/** Blocks held at most by a fetch, whatever the capsule's size (windows ahead and the one read). */
export const FETCH_AHEAD_BLOCKS = FETCH_WINDOW_BLOCKS * (FETCH_WINDOWS_AHEAD + 1)

export interface WindowedCatOptions {
  signal?: AbortSignal
  onProgress?: (event: { type: string; detail?: unknown }) => void
  /** Bytes in a window. Default `FETCH_WINDOW_BLOCKS` leaves. */
  windowBytes?: number
  /** Windows requested ahead of the one being read. Default `FETCH_WINDOWS_AHEAD`. */
  windowsAhead?: number
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
    // the reader's fan-out within the window (every leaf of it at once)
    blockReadConcurrency: Math.max(1, Math.ceil(length / UNIXFS_CHUNK_SIZE)),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  } as Parameters<UnixFS['cat']>[1])) {
    chunks.push(chunk)
  }
  return chunks
}

/** The bytes of the file `cid`, in order, holding at most `windowsAhead + 1` windows. */
export async function* windowedCat(
  fs: UnixFS,
  cid: CID,
  options: WindowedCatOptions = {},
): AsyncGenerator<Uint8Array> {
  const window = options.windowBytes ?? FETCH_WINDOW_BLOCKS * UNIXFS_CHUNK_SIZE
  const ahead = Math.max(1, options.windowsAhead ?? FETCH_WINDOWS_AHEAD)
  // windows requested and not yet handed to the reader, in file order
  const pending: Promise<Uint8Array[]>[] = []
  let asked = 0
  // set by the first short window: the file ends there, nothing past it is requested
  let ended = false
  // a reader that stops early leaves the windows still requested behind: each has a catch
  const request = (count: number) => {
    while (!ended && pending.length < count) {
      const next = collect(fs, cid, asked, window, options)
      // a window past the end (the file ended at a window's edge) rejects; it is never read
      next.catch(() => {})
      pending.push(next)
      asked += window
    }
  }
  request(ahead + 1)
  for (;;) {
    const current = pending.shift()
    if (!current) return
    const chunks: Uint8Array[] = await current
    if (chunks.reduce((n, c) => n + c.byteLength, 0) < window) {
      ended = true
      // windows past the end come back empty or rejected; none is read
      pending.length = 0
    }
    yield* chunks
    // the reader is done with this window: the next goes out now, so `ahead` windows stay
    // requested while this node waits for the one it reads next (requested only once a window
    // had come in, the wire stood idle between windows: stop-and-wait per window)
    request(ahead + 1)
  }
}
