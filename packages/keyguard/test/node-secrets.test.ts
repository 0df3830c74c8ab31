/**
 * An executor's wallet words and receiver key behind a sealer (the host's TPM on swtpm, or the
 * software sealer): no byte of either is in any file of the folder afterwards, the round trip
 * gives them back, another sealer's key cannot open them, and an older install's plain 0600
 * files are sealed on first open and removed.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  generateMnemonic,
  hostSealer,
  type NodeSecretsFiles,
  openNodeSecrets,
  sealNodeSecrets,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const quiet = { info: () => {}, warn: () => {} }
let tpm: Swtpm
let dir: string

const filesIn = (d: string): NodeSecretsFiles => ({
  secrets: join(d, 'secrets.json'),
  identity: join(d, 'identity.json'),
  receiverKey: join(d, 'receiver.key'),
})

/** Every file of the folder as one buffer: what a copy of the data folder gives away. */
async function folderBytes(d: string): Promise<Buffer> {
  const names = await readdir(d, { recursive: true })
  const parts: Buffer[] = []
  for (const n of names) {
    if ((await stat(join(d, n))).isFile()) parts.push(await readFile(join(d, n)))
  }
  return Buffer.concat(parts)
}

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-node-secrets-'))
}, 30_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('node secrets behind a sealer', () => {
  for (const kind of ['tpm2', 'software'] as const) {
    it(`${kind}: sealed, no plain byte in the folder, round trip; another key is refused`, async () => {
      const d = await mkdtemp(join(dir, `${kind}-`))
      const tcti = kind === 'tpm2' ? tpm.tcti : undefined
      const sealer = hostSealer({ dataDir: d, tcti, createIfMissing: true, logger: quiet })
      const mnemonic = generateMnemonic()
      const receiverKey = randomBytes(32)
      await sealNodeSecrets(filesIn(d), sealer, {
        mnemonic,
        receiverKey: new Uint8Array(receiverKey),
      })
      const all = await folderBytes(d)
      for (const word of mnemonic.split(' ').filter((w) => w.length > 4)) {
        expect(all.includes(Buffer.from(` ${word} `))).toBe(false)
      }
      expect(all.includes(Buffer.from(mnemonic))).toBe(false)
      expect(all.includes(receiverKey)).toBe(false)
      expect(all.includes(Buffer.from(receiverKey.toString('hex')))).toBe(false)
      expect((await stat(join(d, 'secrets.json'))).mode & 0o777).toBe(0o600)
      expect((await sealer.describe()).hardwareBacked).toBe(false) // swtpm and the file: no hardware

      const back = await openNodeSecrets(filesIn(d), sealer)
      expect(back.mnemonic).toBe(mnemonic)
      expect(Buffer.from(back.receiverKey).equals(receiverKey)).toBe(true)

      // Another sealer key (a new TPM key at another handle, another software key file).
      const other = await mkdtemp(join(dir, `${kind}-other-`))
      const stranger = hostSealer({
        dataDir: other,
        tcti,
        handle: 0x81000019,
        createIfMissing: true,
        logger: quiet,
      })
      await expect(openNodeSecrets(filesIn(d), stranger)).rejects.toMatchObject({ code: 'UNWRAP' })
    })
  }

  it('migrates an older install: plain files sealed on first open, then removed', async () => {
    const d = await mkdtemp(join(dir, 'legacy-'))
    const files = filesIn(d)
    const mnemonic = generateMnemonic()
    const receiverKey = randomBytes(32)
    await writeFile(files.identity, JSON.stringify({ version: 1, mnemonic }), { mode: 0o600 })
    await writeFile(files.receiverKey, `${receiverKey.toString('hex')}\n`, { mode: 0o600 })
    const sealer = hostSealer({ dataDir: d, tcti: tpm.tcti, createIfMissing: true, logger: quiet })

    const first = await openNodeSecrets(files, sealer)
    expect(first.mnemonic).toBe(mnemonic)
    expect(Buffer.from(first.receiverKey).equals(receiverKey)).toBe(true)
    expect((await readdir(d)).sort()).toEqual(['secrets.json', 'tpm2-key.json'])
    const all = await folderBytes(d)
    expect(all.includes(Buffer.from(mnemonic))).toBe(false)
    expect(all.includes(Buffer.from(receiverKey.toString('hex')))).toBe(false)

    const again = await openNodeSecrets(files, sealer)
    expect(again.mnemonic).toBe(mnemonic)

    const empty = await mkdtemp(join(dir, 'empty-'))
    await expect(openNodeSecrets(filesIn(empty), sealer)).rejects.toMatchObject({
      code: 'KEY_STORE_CORRUPT',
      details: { reason: 'missing' },
    })
    const broken = await mkdtemp(join(dir, 'broken-'))
    await writeFile(filesIn(broken).identity, JSON.stringify({ version: 1 }))
    await writeFile(filesIn(broken).receiverKey, 'zz\n')
    await expect(openNodeSecrets(filesIn(broken), sealer)).rejects.toMatchObject({
      code: 'KEY_STORE_CORRUPT',
    })
  })
})
