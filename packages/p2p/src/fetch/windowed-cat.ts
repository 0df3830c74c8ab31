/**
 * Reading a UnixFS file in bounded memory. The exporter behind `unixfs.cat` walks the whole DAG
 * as fast as blocks arrive and queues every leaf for the reader with no back-pressure (and, by
 * default, asks for every child of a node at once): with a reader slower than the network (a
 * disk, a sandbox) it held up to the whole capsule in memory. Here the file is read window by
 * window (`offset`/`length`: the exporter fetches only that range's blocks), the next window
 * fetched while the current one is read: at most two windows are held.
 */
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import { UNIXFS_CHUNK_SIZE } from '../import/profile.ts'

/** Blocks (1 MiB leaves) in one window; two windows are in flight at most. */
export const FETCH_WINDOW_BLOCKS = 8

export interface WindowedCatOptions {
  signal?: AbortSignal
  onProgress?: (event: { type: string; detail?: unknown }) => void
  /** Bytes in a window. Default `FETCH_WINDOW_BLOCKS` leaves. */
  windowBytes?: number
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
    blockReadConcurrency: FETCH_WINDOW_BLOCKS,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  } as Parameters<UnixFS['cat']>[1])) {
    chunks.push(chunk)
  }
  return chunks
}

/** The bytes of the file `cid`, in order, holding at most two windows. */
export async function* windowedCat(
  fs: UnixFS,
  cid: CID,
  options: WindowedCatOptions = {},
): AsyncGenerator<Uint8Array> {
  const window = options.windowBytes ?? FETCH_WINDOW_BLOCKS * UNIXFS_CHUNK_SIZE
  let offset = 0
  let next: Promise<Uint8Array[]> | undefined = collect(fs, cid, offset, window, options)
  try {
    while (next) {
      const chunks: Uint8Array[] = await next
      const got = chunks.reduce((n, c) => n + c.byteLength, 0)
      // a full window: the file may go on; fetch the next one while this one is read
      next = got === window ? collect(fs, cid, offset + window, window, options) : undefined
      yield* chunks
      offset += got
    }
  } finally {
    // a reader that stops early leaves no fetch running unobserved
    next?.catch(() => {})
  }
}
