/**
 * A key record that does not parse (tampered or bit-rotted: writes are atomic, so never torn)
 * on a real swtpm (ADR 0089). The running node refuses it (`KEY_STORE_CORRUPT`: it must not
 * re-pin whatever key the TPM shows), but init/recover (`createIfMissing`, the owner setting
 * the key up again) move it aside with a warning and pin afresh, instead of being stuck.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKeyRecord, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { expectCode } from './compliance.ts'

const HANDLE = 0x81000070

let tpm: Swtpm
let dir: string

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-record-corrupt-'))
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('a corrupt TPM key record (swtpm)', () => {
  it('refused by the running node, moved aside and re-pinned by init/recover', async () => {
    const file = join(dir, 'tpm2-key.json')
    const warnings: string[] = []
    const logger = { info: () => {}, warn: (m: string) => void warnings.push(m) }
    const first = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: file,
      logger,
    })
    const keyId = (await first.publicKey()).keyId
    const good = await readFile(file)
    const garbage = Buffer.concat([good.subarray(0, 40), randomBytes(8)])
    await writeFile(file, garbage, { mode: 0o600 })

    const serving = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE, keyRecordFile: file, logger })
    await expectCode(serving.publicKey(), 'KEY_STORE_CORRUPT')

    const again = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: file,
      logger,
    })
    expect((await again.publicKey()).keyId).toBe(keyId)
    expect((await readKeyRecord(file))?.keyId).toBe(keyId)
    const aside = (await readdir(dir)).filter((n) => n.startsWith('tpm2-key.json.corrupt-'))
    expect(aside).toHaveLength(1)
    expect(await readFile(join(dir, aside[0] as string))).toEqual(garbage)
    expect(warnings.join('\n')).toMatch(/corrupt/)
  })
})
