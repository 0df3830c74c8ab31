import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyStore, KeyExistsError, type KeyStore, type WrappedKey } from '../src/index.ts'
import { expectCode } from './compliance.ts'
import { runAndKill } from './crash.ts'
import { recordFor } from './fixtures/records.ts'

let root: string
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-store-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

let n = 0
const freshDir = () => join(root, `s${++n}`)

const wrapped = (scheme: WrappedKey['scheme'] = 'tpm2-rsa-oaep-sha256'): WrappedKey => ({
  scheme,
  keyId: randomBytes(32).toString('hex'),
  ciphertext: new Uint8Array(randomBytes(256)),
})
const CAPSULE = `0x${'ab'.repeat(32)}`

describe('key store', () => {
  it('stores, reads, lists and deletes records', async () => {
    const store = await createKeyStore(freshDir())
    const keys = [wrapped(), wrapped('hpke-x25519-recovery')]
    const put = await store.put({
      capsuleId: CAPSULE,
      wrappedKeys: keys,
      metadata: { cid: 'bafy1' },
    })
    const got = await store.get(CAPSULE)
    expect(got).toEqual(put)
    expect(got?.wrappedKeys).toEqual(keys)
    expect(await store.get('0x01')).toBeUndefined()
    await store.put({ capsuleId: 'bafyabc', wrappedKeys: [wrapped()] })
    expect(await store.list()).toEqual([CAPSULE, 'bafyabc'])
    expect(await store.delete('bafyabc')).toBe(true)
    expect(await store.delete('bafyabc')).toBe(false)
    expect(await store.list()).toEqual([CAPSULE])
  })

  it('never serves a cached record after a write by this store, another store or in place', async () => {
    const dir = freshDir()
    const a = await createKeyStore(dir)
    const b = await createKeyStore(dir)
    const first = [wrapped()]
    await a.put({ capsuleId: CAPSULE, wrappedKeys: first })
    expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(first)
    expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(first)
    // Replaced through the same store.
    const second = [wrapped(), wrapped('hpke-x25519-recovery')]
    await a.put({ capsuleId: CAPSULE, wrappedKeys: second }, { replace: true })
    expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(second)
    // Replaced through another store (another process does the same rename).
    const third = [wrapped()]
    await b.put({ capsuleId: CAPSULE, wrappedKeys: third }, { replace: true })
    expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(third)
    // Several replacements in a row, read after each.
    for (let i = 0; i < 20; i++) {
      const next = [wrapped()]
      await (i % 2 ? a : b).put({ capsuleId: CAPSULE, wrappedKeys: next }, { replace: true })
      expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(next)
    }
    // Corrupted in place (same inode) after a cached read.
    await a.get(CAPSULE)
    await writeFile(join(dir, `${CAPSULE}.json`), '{"version":1}')
    await expectCode(a.get(CAPSULE), 'KEY_STORE_CORRUPT')
    // Deleted by the other store, then created again.
    expect(await b.delete(CAPSULE)).toBe(true)
    await b.put({ capsuleId: CAPSULE, wrappedKeys: first })
    await a.get(CAPSULE)
    expect(await b.delete(CAPSULE)).toBe(true)
    expect(await a.get(CAPSULE)).toBeUndefined()
    await b.put({ capsuleId: CAPSULE, wrappedKeys: second })
    expect((await a.get(CAPSULE))?.wrappedKeys).toEqual(second)
  })

  it('hands out copies: changing a returned record does not change the next read', async () => {
    const store = await createKeyStore(freshDir())
    const keys = [wrapped()]
    await store.put({ capsuleId: CAPSULE, wrappedKeys: keys, metadata: { cid: 'x' } })
    const got = (await store.get(CAPSULE))!
    got.wrappedKeys[0]!.ciphertext.fill(0)
    got.metadata.cid = 'changed'
    got.wrappedKeys.pop()
    const again = (await store.get(CAPSULE))!
    expect(again.wrappedKeys).toEqual(keys)
    expect(again.metadata).toEqual({ cid: 'x' })
  })

  it('treats 0x-hex ids case-insensitively', async () => {
    const store = await createKeyStore(freshDir())
    await store.put({
      capsuleId: CAPSULE.toUpperCase().replace('0X', '0x'),
      wrappedKeys: [wrapped()],
    })
    expect(await store.get(CAPSULE)).toBeDefined()
    await expectCode(store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()] }), 'KEY_EXISTS')
  })

  it('refuses to overwrite without replace, and keeps createdAt on replace', async () => {
    const store = await createKeyStore(freshDir())
    const first = await store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()] })
    const err = await expectCode(
      store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()] }),
      'KEY_EXISTS',
    )
    expect(err).toBeInstanceOf(KeyExistsError)
    expect(await store.get(CAPSULE)).toEqual(first)
    await new Promise((r) => setTimeout(r, 5))
    const second = await store.put(
      { capsuleId: CAPSULE, wrappedKeys: [wrapped()] },
      { replace: true },
    )
    expect(second.createdAt).toBe(first.createdAt)
    expect(second.updatedAt >= first.updatedAt).toBe(true)
    expect(await store.get(CAPSULE)).toEqual(second)
  })

  it('lets exactly one of two concurrent creators win', async () => {
    const store = await createKeyStore(freshDir())
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()] })),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of results) if (r.status === 'rejected') expect(r.reason.code).toBe('KEY_EXISTS')
  })

  it('writes files 0600 in a 0700 directory and never the plain key', async () => {
    const dir = freshDir()
    const store = await createKeyStore(dir)
    await store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()] })
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dir, `${CAPSULE}.json`))).mode & 0o777).toBe(0o600)
    expect(await readdir(dir)).toEqual([`${CAPSULE}.json`])
  })

  it('rejects unsafe ids and malformed records with INVALID_ARGUMENT', async () => {
    const store = await createKeyStore(freshDir())
    for (const id of ['../etc', 'a/b', '.hidden', '', 'x'.repeat(129), 'a.json', 'é']) {
      await expectCode(store.put({ capsuleId: id, wrappedKeys: [wrapped()] }), 'INVALID_ARGUMENT')
      await expectCode(store.get(id), 'INVALID_ARGUMENT')
    }
    const bad: unknown[] = [
      [],
      Array.from({ length: 17 }, () => wrapped()),
      [{ ...wrapped(), scheme: 'rot13' }],
      [{ ...wrapped(), keyId: 'XY' }],
      [{ ...wrapped(), ciphertext: new Uint8Array(0) }],
      [{ ...wrapped(), ciphertext: 'abc' }],
    ]
    for (const wrappedKeys of bad) {
      await expectCode(
        store.put({ capsuleId: CAPSULE, wrappedKeys: wrappedKeys as WrappedKey[] }),
        'INVALID_ARGUMENT',
      )
    }
    await expectCode(
      store.put({
        capsuleId: CAPSULE,
        wrappedKeys: [wrapped()],
        metadata: { n: 1 as unknown as string },
      }),
      'INVALID_ARGUMENT',
    )
  })

  describe('malformed files give KEY_STORE_CORRUPT with a reason', () => {
    let store: KeyStore
    let dir: string
    let good: Record<string, unknown>
    beforeAll(async () => {
      dir = freshDir()
      store = await createKeyStore(dir)
      await store.put({ capsuleId: CAPSULE, wrappedKeys: [wrapped()], metadata: { a: 'b' } })
      good = JSON.parse(await readFile(join(dir, `${CAPSULE}.json`), 'utf8'))
    })
    const k0 = (o: Record<string, unknown>) => (o.wrappedKeys as Record<string, unknown>[])[0]!
    const cases: [string, (o: Record<string, unknown>) => unknown, string][] = [
      ['unknown version', (o) => ({ ...o, version: 2 }), 'unknown-version'],
      ['missing field', ({ metadata: _, ...o }) => o, 'missing-field'],
      ['unknown field', (o) => ({ ...o, extra: 1 }), 'unknown-field'],
      ['other capsule id', (o) => ({ ...o, capsuleId: '0x01' }), 'id-mismatch'],
      ['bad date', (o) => ({ ...o, createdAt: 'yesterday' }), 'bad-date'],
      ['empty key list', (o) => ({ ...o, wrappedKeys: [] }), 'bad-field'],
      [
        'unknown scheme',
        (o) => ({ ...o, wrappedKeys: [{ ...k0(o), scheme: 'x' }] }),
        'unknown-scheme',
      ],
      ['bad key id', (o) => ({ ...o, wrappedKeys: [{ ...k0(o), keyId: 'zz' }] }), 'bad-field'],
      [
        'bad base64',
        (o) => ({ ...o, wrappedKeys: [{ ...k0(o), ciphertext: 'a$b=' }] }),
        'bad-base64',
      ],
      [
        'non-canonical base64',
        (o) => ({ ...o, wrappedKeys: [{ ...k0(o), ciphertext: 'AB==' }] }),
        'bad-base64',
      ],
      ['array', () => [], 'not-object'],
      ['null', () => null, 'not-object'],
      ['metadata value not a string', (o) => ({ ...o, metadata: { a: 1 } }), 'bad-field'],
    ]
    for (const [name, mutate, reason] of cases) {
      it(name, async () => {
        await writeFile(join(dir, `${CAPSULE}.json`), JSON.stringify(mutate(structuredClone(good))))
        const err = await expectCode(store.get(CAPSULE), 'KEY_STORE_CORRUPT')
        expect(err.details.reason).toBe(reason)
      })
    }
    it('truncated at every length', async () => {
      const text = JSON.stringify(good)
      for (let len = 0; len < text.length; len += 7) {
        await writeFile(join(dir, `${CAPSULE}.json`), text.slice(0, len))
        const err = await expectCode(store.get(CAPSULE), 'KEY_STORE_CORRUPT')
        expect(['not-json', 'not-object']).toContain(err.details.reason)
      }
    })
    it('oversized and not UTF-8', async () => {
      await writeFile(join(dir, `${CAPSULE}.json`), Buffer.alloc((1 << 20) + 1, 0x20))
      expect((await expectCode(store.get(CAPSULE), 'KEY_STORE_CORRUPT')).details.reason).toBe(
        'too-large',
      )
      await writeFile(join(dir, `${CAPSULE}.json`), Buffer.from([0x7b, 0xff, 0x7d]))
      expect((await expectCode(store.get(CAPSULE), 'KEY_STORE_CORRUPT')).details.reason).toBe(
        'not-json',
      )
    })
  })

  it('is never torn when the writer is killed with SIGKILL mid-write', async () => {
    const dir = freshDir()
    for (let round = 0; round < 4; round++) {
      await runAndKill(dir, 'store', 30 + round * 25)
      const store = await createKeyStore(dir)
      // The reopen removed any temp file the crash left.
      expect((await readdir(dir)).filter((f) => !f.endsWith('.json'))).toEqual([])
      const ids = await store.list()
      expect(ids).toEqual(['c0', 'c1', 'c2', 'c3'])
      for (const id of ids) {
        const record = await store.get(id)
        const seq = Number(record?.metadata.seq)
        expect(seq % 4, id).toBe(Number(id.slice(1)))
        const expected = recordFor(seq)
        expect(record?.wrappedKeys).toEqual(expected.wrappedKeys)
        expect(record?.metadata).toEqual(expected.metadata)
      }
    }
  })
})
