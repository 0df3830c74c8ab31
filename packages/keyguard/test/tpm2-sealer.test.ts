import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TpmHandleError, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { mapToolFailure } from '../src/tpm2/tools.ts'
import { expectCode, sealerComplianceSuite } from './compliance.ts'

let tpm: Swtpm
beforeAll(async () => {
  tpm = await startSwtpm()
})
afterAll(async () => {
  await tpm?.stop()
})

const tools = (tool: string, args: string[]) =>
  execa(tool, args, { env: { TPM2TOOLS_TCTI: tpm.tcti } })

sealerComplianceSuite(
  'tpm2 on swtpm, direct TPM2_RSA_Decrypt',
  async () => ({
    sealer: tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000010, createIfMissing: true }),
    other: tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000011, createIfMissing: true }),
  }),
  { propertyRuns: 10 },
)

sealerComplianceSuite(
  'tpm2 on swtpm, tpm2_rsadecrypt (tools)',
  async () => ({
    sealer: tpm2Sealer({
      tcti: tpm.tcti,
      handle: 0x81000010,
      createIfMissing: true,
      unwrapVia: 'tools',
      allowUnencryptedTransport: true,
    }),
    other: tpm2Sealer({
      tcti: tpm.tcti,
      handle: 0x81000011,
      createIfMissing: true,
      unwrapVia: 'tools',
      allowUnencryptedTransport: true,
    }),
  }),
  { propertyRuns: 10 },
)

describe('tpm2 sealer', () => {
  it('creates the key once and finds the same key again at the handle', async () => {
    const a = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000020, createIfMissing: true })
    const keyId = (await a.publicKey()).keyId
    const b = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000020 })
    expect((await b.publicKey()).keyId).toBe(keyId)
    const { stdout } = await tools('tpm2_getcap', ['handles-persistent'])
    expect(stdout).toContain('0x81000020')
    // Provisioning flushed its transient objects (swtpm has no resource manager).
    expect((await tools('tpm2_getcap', ['handles-transient'])).stdout.trim()).toBe('')
    const key = randomBytes(32)
    expect(Buffer.from(await b.unwrap(await a.wrap(key))).equals(key)).toBe(true)
  })

  it('fails with TPM_HANDLE for an empty handle when not told to create', async () => {
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000030 })
    const err = await expectCode(sealer.publicKey(), 'TPM_HANDLE')
    expect(err).toBeInstanceOf(TpmHandleError)
    await expectCode(sealer.wrap(randomBytes(32)), 'TPM_HANDLE')
  })

  it('fails with TPM_HANDLE for a handle that holds another kind of key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kg-ecc-'))
    try {
      await tools('tpm2_createprimary', [
        '-C',
        'o',
        '-G',
        'ecc256',
        '-c',
        join(dir, 'ecc.ctx'),
        '-Q',
      ])
      await tools('tpm2_evictcontrol', ['-C', 'o', '-c', join(dir, 'ecc.ctx'), '0x81000040', '-Q'])
      await tools('tpm2_flushcontext', ['-t'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000040, createIfMissing: true })
    const err = await expectCode(sealer.publicKey(), 'TPM_HANDLE')
    expect(err.details.mismatched).toContain('type')
  })

  it('fails with TPM_HANDLE for a handle outside the owner persistent range', () => {
    for (const handle of [0x80000000, 0x81800000, 0x01000000, 1.5]) {
      expect(() => tpm2Sealer({ tcti: tpm.tcti, handle })).toThrow(TpmHandleError)
    }
  })

  it('fails with INVALID_ARGUMENT for a malformed TCTI string', () => {
    let caught: unknown
    try {
      tpm2Sealer({ tcti: 'swtpm:host=x\nport=1' })
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DigicapError)
    expect((caught as DigicapError).code).toBe('INVALID_ARGUMENT')
  })

  it('fails with TPM_UNAVAILABLE when tpm2-tools are not installed', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'kg-notools-'))
    try {
      // The direct path reads and unwraps without tools; provisioning and the tools path need them.
      const provisioning = tpm2Sealer({
        tcti: tpm.tcti,
        toolsPath: empty,
        handle: 0x81000077,
        createIfMissing: true,
      })
      const err = await expectCode(provisioning.publicKey(), 'TPM_UNAVAILABLE')
      expect(err.details.reason).toBe('tools-missing')
      const viaTools = tpm2Sealer({
        tcti: tpm.tcti,
        toolsPath: empty,
        unwrapVia: 'tools',
        allowUnencryptedTransport: true,
      })
      const err2 = await expectCode(viaTools.publicKey(), 'TPM_UNAVAILABLE')
      expect(err2.details.reason).toBe('tools-missing')
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })

  it('fails with TPM_UNAVAILABLE when nothing listens at the TCTI', async () => {
    const sealer = tpm2Sealer({ tcti: 'swtpm:host=127.0.0.1,port=1' })
    const err = await expectCode(sealer.publicKey(), 'TPM_UNAVAILABLE')
    expect(err.details.reason).toBe('tcti')
  })

  it('fails with TPM_UNAVAILABLE when the TPM stops mid-way; the key survives a TPM restart', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'kg-state-'))
    try {
      const first = await startSwtpm({ stateDir })
      const sealer = tpm2Sealer({ tcti: first.tcti, createIfMissing: true })
      const key = randomBytes(32)
      const wrapped = await sealer.wrap(key)
      await sealer.unwrap(wrapped)
      await first.stop()
      const err = await expectCode(sealer.unwrap(wrapped), 'TPM_UNAVAILABLE')
      expect(err.details.reason).toBe('tcti')
      // Power back on (same state, new port): the persistent key is still there.
      const second = await startSwtpm({ stateDir })
      try {
        const again = tpm2Sealer({ tcti: second.tcti })
        expect((await again.publicKey()).keyId).toBe(wrapped.keyId)
        expect(Buffer.from(await again.unwrap(wrapped)).equals(key)).toBe(true)
      } finally {
        await second.stop()
      }
    } finally {
      await rm(stateDir, { recursive: true, force: true })
    }
  })

  it('marks a swtpm-backed sealer as not hardware backed', async () => {
    const d = await tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true }).describe()
    expect(d).toMatchObject({
      kind: 'tpm2',
      hardwareBacked: false,
      details: { handle: '0x81000010' },
    })
    expect(d.warning).toMatch(/INSECURE/)
  })
})

describe('tpm2-tools failure mapping', () => {
  const esys = (fn: string, rc: number) =>
    `ERROR: ${fn}(0x${rc.toString(16).toUpperCase()}) - text\n`
  const map = (stderr: string, op: 'unwrap' | 'read' | 'provision' = 'read') =>
    mapToolFailure('tpm2_x', op, { exitCode: 1, stderr, timedOut: false })

  it('maps busy, memory and retry response codes to TPM_BUSY', () => {
    for (const rc of [0x902, 0x903, 0x904, 0x908, 0x922, 0x90a]) {
      expect(map(esys('Esys_RSA_Decrypt', rc))).toMatchObject({
        code: 'TPM_BUSY',
        details: { reason: 'busy' },
      })
    }
    expect(map(esys('Esys_RSA_Decrypt', 0x921))).toMatchObject({
      code: 'TPM_BUSY',
      details: { reason: 'lockout' },
    })
    expect(map('ERROR:tcti: open /dev/tpm0: Device or resource busy')).toMatchObject({
      code: 'TPM_BUSY',
      details: { reason: 'device-busy' },
    })
  })

  it('maps handle errors with any handle number to TPM_HANDLE', () => {
    for (const rc of [0x18b, 0x28b, 0x8b])
      expect(map(esys('Esys_TR_FromTPMPublic', rc)).code).toBe('TPM_HANDLE')
    expect(map(esys('Esys_EvictControl', 0x14c), 'provision').code).toBe('TPM_HANDLE')
  })

  it('maps decryption failures to UNWRAP only while unwrapping', () => {
    for (const rc of [0x84, 0x95, 0x101, 0x2c4])
      expect(map(esys('Esys_RSA_Decrypt', rc), 'unwrap').code).toBe('UNWRAP')
    expect(map(esys('Esys_RSA_Decrypt', 0x84), 'read').code).toBe('TPM_COMMAND')
  })

  it('maps TCTI-layer codes, timeouts and missing binaries to TPM_UNAVAILABLE', () => {
    expect(map(esys('Esys_RSA_Decrypt', 0xa000a)).details.reason).toBe('tcti')
    expect(map('ERROR: Could not load tcti, got: "device:/dev/tpmrm0"').details.reason).toBe('tcti')
    expect(mapToolFailure('t', 'read', { stderr: '', timedOut: true })).toMatchObject({
      code: 'TPM_UNAVAILABLE',
      details: { reason: 'timeout' },
    })
    expect(
      mapToolFailure('t', 'read', { stderr: '', timedOut: false, spawnCode: 'ENOENT' }),
    ).toMatchObject({ code: 'TPM_UNAVAILABLE', details: { reason: 'tools-missing' } })
  })

  it('maps anything else to TPM_COMMAND with the last error line', () => {
    const err = map('WARNING: x\nERROR: Esys_Something(0x7000B) - bad\n')
    expect(err).toMatchObject({ code: 'TPM_COMMAND', details: { rc: '0x7000b' } })
  })
})

describe('tpm2 sealer without a resource manager', () => {
  const fillObjectSlots = async (dir: string) => {
    for (let i = 0; i < 8; i++) {
      const r = await execa(
        'tpm2_createprimary',
        ['-C', 'o', '-G', 'ecc256', '-c', join(dir, `p${i}.ctx`), '-Q'],
        {
          env: { TPM2TOOLS_TCTI: tpm.tcti },
          reject: false,
        },
      )
      if (r.failed) return
    }
    throw new Error('swtpm never ran out of object slots')
  }

  it('reports a full TPM as TPM_BUSY (real swtpm answer)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kg-full-'))
    try {
      await fillObjectSlots(dir)
      const { runTpm2Tool } = await import('../src/tpm2/tools.ts')
      const err = await expectCode(
        runTpm2Tool(
          { tcti: tpm.tcti, timeoutMs: 5000 },
          'tpm2_createprimary',
          ['-C', 'o', '-c', join(dir, 'x.ctx')],
          {
            op: 'provision',
          },
        ),
        'TPM_BUSY',
      )
      expect(err.details).toMatchObject({ reason: 'busy', rc: '0x902' })
    } finally {
      await tools('tpm2_flushcontext', ['-t'])
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('flushes leftover transient objects and provisions anyway', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kg-full-'))
    try {
      await fillObjectSlots(dir)
      const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000050, createIfMissing: true })
      const key = randomBytes(32)
      expect(Buffer.from(await sealer.unwrap(await sealer.wrap(key))).equals(key)).toBe(true)
      expect((await tools('tpm2_getcap', ['handles-transient'])).stdout.trim()).toBe('')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
