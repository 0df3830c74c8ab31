/**
 * The shared compliance suite every `CapsuleStore` implementation must pass.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CapsuleStore } from '../src/index.ts'
import { collect } from './bytes.ts'

export interface StoreHarness {
  store: CapsuleStore
  close(): Promise<void>
}

export function describeCapsuleStore(name: string, make: () => Promise<StoreHarness>): void {
  describe(`CapsuleStore compliance: ${name}`, () => {
    let h: StoreHarness
    let dir: string
    beforeAll(async () => {
      h = await make()
      dir = await mkdtemp(join(tmpdir(), 'digicap-store-'))
    })
    afterAll(async () => {
      await h.close()
      await rm(dir, { recursive: true, force: true })
    })

    it('round-trips bytes and gives the same CID for the same bytes', async () => {
      const bytes = randomBytes(3000)
      const cid = await h.store.put(bytes)
      expect(await h.store.put(Buffer.from(bytes))).toBe(cid)
      expect(await collect(h.store.get(cid))).toEqual(bytes)
      expect(await h.store.has(cid)).toBe(true)
    })

    it('uses CIDv1 with raw leaves (a one-block file is a raw CID)', async () => {
      const cid = await h.store.put(new TextEncoder().encode('one block'))
      expect(cid.startsWith('bafkrei')).toBe(true)
    })

    it('streams a multi-block file from a path and a stream, reporting progress', async () => {
      const bytes = randomBytes(3 * 1024 * 1024 + 17)
      const path = join(dir, 'big.bin')
      await writeFile(path, bytes)
      const seen: number[] = []
      const cid = await h.store.put({ path }, { onProgress: (n) => seen.push(n) })
      expect(cid.startsWith('bafy')).toBe(true)
      expect(seen.at(-1)).toBe(bytes.length)
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += 100_000) yield bytes.subarray(i, i + 100_000)
      }
      expect(await h.store.put(chunks())).toBe(cid)
      const got: number[] = []
      expect(await collect(h.store.get(cid, { onProgress: (n) => got.push(n) }))).toEqual(bytes)
      expect(got.at(-1)).toBe(bytes.length)
    })

    it('a file or stream of more chunks than the import pool holds reads back whole', async () => {
      // the import reuses its chunk buffers; a store that kept a buffer got it overwritten
      const bytes = randomBytes(12 * 1024 * 1024 + 5)
      const path = join(dir, 'pooled.bin')
      await writeFile(path, bytes)
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += 1024 * 1024) yield bytes.subarray(i, i + 1024 * 1024)
      }
      for (const source of [{ path }, chunks()]) {
        const cid = await h.store.put(source)
        expect((await collect(h.store.get(cid))).equals(bytes)).toBe(true)
      }
    })

    it('stores an empty file', async () => {
      const cid = await h.store.put(new Uint8Array(0))
      expect((await collect(h.store.get(cid))).length).toBe(0)
    })

    it('pins idempotently', async () => {
      const cid = await h.store.put(randomBytes(100))
      await h.store.pin(cid)
      await h.store.pin(cid)
      expect(await h.store.has(cid)).toBe(true)
    })

    it('reports unknown content as absent without the network', async () => {
      const other = await h.store.put(randomBytes(10))
      // a CID of bytes this store never saw
      const foreign = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
      expect(foreign).not.toBe(other)
      expect(await h.store.has(foreign)).toBe(false)
    })

    it('aborted fetch of missing content fails with CAPSULE_STORE', async () => {
      const foreign = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
      await expect(
        collect(h.store.get(foreign, { signal: AbortSignal.timeout(200) })),
      ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    })

    it('rejects malformed CIDs with INVALID_CID', async () => {
      for (const bad of ['', 'not-a-cid', 'bafy', 'x'.repeat(300)]) {
        await expect(h.store.has(bad)).rejects.toMatchObject({ code: 'INVALID_CID' })
        await expect(collect(h.store.get(bad))).rejects.toMatchObject({ code: 'INVALID_CID' })
        await expect(h.store.pin(bad)).rejects.toMatchObject({ code: 'INVALID_CID' })
      }
    })

    it('rejects an unsupported source with CAPSULE_STORE', async () => {
      await expect(h.store.put(42 as never)).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    })
  })
}
