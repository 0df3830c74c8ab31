/** What the p2p tests read back and compare: a stream's bytes joined, a capsule's raw leaves. */
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

const MiB = 1_048_576

/** Every chunk of `source`, joined. */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of source) parts.push(c)
  return Buffer.concat(parts)
}

/** The raw leaves of a capsule of `bytes` in file order (1 MiB, as the import cuts), with where each is. */
export async function leavesOf(
  bytes: Uint8Array,
): Promise<{ cid: CID; offset: number; length: number }[]> {
  const out: { cid: CID; offset: number; length: number }[] = []
  for (let at = 0; at < bytes.byteLength; at += MiB) {
    const part = bytes.subarray(at, at + MiB)
    out.push({
      cid: CID.createV1(raw.code, await sha256.digest(part)),
      offset: at,
      length: part.byteLength,
    })
  }
  return out
}

/** The raw leaf CIDs of a capsule of `bytes`, in file order. */
export async function leafCids(bytes: Uint8Array): Promise<CID[]> {
  return (await leavesOf(bytes)).map((l) => l.cid)
}
