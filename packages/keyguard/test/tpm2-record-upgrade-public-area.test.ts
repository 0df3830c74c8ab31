/**
 * A key record pinned without the key's public area (written before the public area was
 * pinned, 2026-12-04, or through tpm2-tools) gets it on the next start over a direct TCTI.
 * ADR 0089 reads the PCR values an owner approves in a session salted to the PINNED public
 * area, and refuses a record without one (`no-pinned-key`, hint: "start the node once, it pins
 * the key"); but the pin check returned early for a record of the same key, so the record never
 * got it and `key-policy authorize` (and recover on that node) stayed refused. Real swtpm.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derivePolicyAuthKey, generateMnemonic, readKeyRecord, tpm2Sealer } from '../src/index.ts'
import { keyPolicyAuthorize } from '../src/local.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const PCR = 16
const HANDLE = 0x81000061
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm
let dir: string

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-record-upgrade-'))
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('a key record without the public area', () => {
  it('is completed at the next start, and key-policy authorize then works', async () => {
    const recordFile = join(dir, 'tpm2-key.json')
    const words = generateMnemonic()
    const authKey = await derivePolicyAuthKey(words)
    await tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: recordFile,
      pcrPolicy: { authKey: authKey.publicKey, pcrs: [PCR] },
      logger: quiet,
    }).publicKey()
    // The record as an older node wrote it: same key, no name and public area.
    const { name: _n, publicArea: _p, ...older } = JSON.parse(await readFile(recordFile, 'utf8'))
    await writeFile(recordFile, JSON.stringify(older), { mode: 0o600 })
    expect((await readKeyRecord(recordFile))?.publicArea).toBeUndefined()
    // A serving node's start (no createIfMissing).
    await tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      keyRecordFile: recordFile,
      logger: quiet,
    }).publicKey()
    expect((await readKeyRecord(recordFile))?.publicArea).toMatch(/^[0-9a-f]+$/)
    const view = await keyPolicyAuthorize(tpm.tcti, recordFile, words)
    expect(view.lines?.map((l) => l.match)).toEqual([true])
  }, 60_000)
})
