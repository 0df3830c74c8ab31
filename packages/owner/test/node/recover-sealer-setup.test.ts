/**
 * `recoverSealerSetup`: what `pi-node recover` binds. A new Pi's key gets init's default binding
 * (an emulator stays unbound unless asked; a hardware TPM with no release is refused rather than
 * left unbound); a re-run on a node with a config keeps its binding and refuses a `--pcr-policy`
 * that differs from it. No TPM is touched here: no binding covers the release PCR.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageError } from '@digicap/cli-kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recoverSealerSetup, type SealerConfig } from '../../src/node/index.ts'

let root: string
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'recover-sealer-'))
})
afterAll(() => rm(root, { recursive: true, force: true }))

const swtpm: SealerConfig = { kind: 'tpm2', tcti: 'swtpm:port=1' }
const device: SealerConfig = { kind: 'tpm2', tcti: 'device:/dev/tpmrm0' }

describe('recoverSealerSetup', () => {
  it("a new Pi: an emulator's key stays unbound unless asked, and takes the PCRs asked", async () => {
    expect(await recoverSealerSetup(undefined, swtpm, {}, root)).toEqual({
      sealer: swtpm,
      release: undefined,
    })
    const bound = await recoverSealerSetup(undefined, swtpm, { 'pcr-policy': [16] }, root)
    expect(bound.sealer).toEqual({ ...swtpm, pcrs: [16] })
  })

  it('a new Pi on a hardware TPM with no release pinned is refused, not left unbound', async () => {
    await expect(recoverSealerSetup(undefined, device, {}, root)).rejects.toThrow(UsageError)
    // --no-pcr-policy is the explicit development opt-out.
    const unbound = await recoverSealerSetup(undefined, device, { 'no-pcr-policy': true }, root)
    expect(unbound.sealer).toEqual(device)
  })

  it("a re-run keeps the config's binding and refuses a --pcr-policy that differs", async () => {
    const existing = { sealer: { ...swtpm, pcrs: [16, 7] } }
    const same = await recoverSealerSetup(
      existing,
      existing.sealer,
      { 'pcr-policy': [7, 16] },
      root,
    )
    expect(same).toEqual({ sealer: existing.sealer, release: undefined })
    await expect(
      recoverSealerSetup(existing, existing.sealer, { 'pcr-policy': [7] }, root),
    ).rejects.toThrow(/differs from this node's/)
    await expect(
      recoverSealerSetup(existing, existing.sealer, { 'no-pcr-policy': true }, root),
    ).rejects.toThrow(UsageError)
    // An unbound node asked to stay unbound is fine.
    const plain = { sealer: swtpm }
    expect((await recoverSealerSetup(plain, swtpm, { 'no-pcr-policy': true }, root)).sealer).toBe(
      swtpm,
    )
  })
})
