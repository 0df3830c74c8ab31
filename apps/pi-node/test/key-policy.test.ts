/**
 * `pi-node key-policy show|authorize` as an operator runs it (its own process), on a data
 * folder whose tpm2 sealer key is PCR-bound, against a real swtpm: nothing approved → approve
 * with the words on stdin → the sealer unwraps → a PCR extend → `show` names the PCR that
 * differs and the sealer refuses with TPM_POLICY → approve again → it unwraps, same wrap.
 * Words of someone else are refused; a key without a policy says so (those two in process).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  derivePolicyAuthKey,
  generateMnemonic,
  keyPolicyAuthorize,
  keyPolicyView,
  type Sealer,
  TPM2_KEY_RECORD_FILE,
  tpm2Sealer,
} from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import {
  type OwnerNodeConfig as PiNodeConfig,
  saveOwnerNodeConfig as saveConfig,
} from '@digicap/owner/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli } from './helpers/cli.ts'

const PCRS = [7, 16]
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm
let dir: string
let words: string
let sealer: Sealer

function config(dataDir: string, handle: number): PiNodeConfig {
  return {
    version: 1,
    dataDir,
    rpcUrl: 'http://127.0.0.1:8545',
    chainId: 31337,
    contracts: {
      capsuleRegistry: `0x${'11'.repeat(20)}`,
      nodeRegistry: `0x${'22'.repeat(20)}`,
      accessController: `0x${'33'.repeat(20)}`,
    },
    sealer: { kind: 'tpm2', tcti: tpm.tcti, handle },
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
  }
}

async function keyPolicy(action: string, dataDir = dir, stdin = ''): Promise<Doc> {
  const r = await runCli(['key-policy', action, '--json'], { DIGICAP_DATA_DIR: dataDir }, stdin)
  try {
    return { code: r.code, stderr: r.stderr, ...JSON.parse(r.stdout) }
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n--- stderr:\n${r.stderr}`)
  }
}

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'pi-node-key-policy-'))
  await saveConfig(config(dir, 0x81000040))
  words = generateMnemonic()
  const authKey = await derivePolicyAuthKey(words)
  sealer = tpm2Sealer({
    tcti: tpm.tcti,
    handle: 0x81000040,
    createIfMissing: true,
    keyRecordFile: join(dir, TPM2_KEY_RECORD_FILE),
    pcrPolicy: { authKey: authKey.publicKey, pcrs: PCRS },
    logger: quiet,
  })
  await sealer.publicKey()
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('pi-node key-policy (swtpm)', () => {
  it('show → authorize → extend (refused, PCR named) → authorize again, without re-wrapping', async () => {
    const fresh = await keyPolicy('show')
    expect(fresh.code).toBe(0)
    expect(fresh.keyPolicy).toMatchObject({
      version: 3,
      pcrBound: true,
      pcrs: PCRS,
      approved: false,
      // ADR 0094: the epoch counter is defined by the first approval.
      rollback: { protected: true, epoch: { state: 'missing' } },
    })
    // swtpm, like stock Pi firmware, measured nothing: the binding is flagged as binding nothing.
    expect(fresh.keyPolicy.unmeasured).toBe(true)

    const dataKey = randomBytes(32)
    const wrapped = await sealer.wrap(dataKey)
    const approved = await keyPolicy('authorize', dir, words)
    expect(approved.code).toBe(0)
    expect(approved.keyPolicy.approved).toBe(true)
    expect(approved.keyPolicy.lines.every((l: Doc) => l.match)).toBe(true)
    const epoch = approved.keyPolicy.rollback.epoch
    expect(epoch).toMatchObject({ state: 'ok' })
    expect(epoch.approved).toBe(epoch.value)
    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(dataKey)).toBe(true)

    await promisify(execFile)('tpm2_pcrextend', [`16:sha256=${randomBytes(32).toString('hex')}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    const after = await keyPolicy('show')
    expect(after.keyPolicy.lines.filter((l: Doc) => !l.match).map((l: Doc) => l.pcr)).toEqual([16])
    expect(after.keyPolicy.unmeasured).toBe(false)
    const refused = await sealer.unwrap(wrapped).catch((e: unknown) => e)
    expect((refused as { code?: string }).code).toBe('TPM_POLICY')
    expect((refused as Error).message).toMatch(/PCR 16/)

    const again = await keyPolicy('authorize', dir, words)
    expect(again.code).toBe(0)
    // The counter moved on: the first approval is revoked.
    expect(BigInt(again.keyPolicy.rollback.epoch.value)).toBe(BigInt(epoch.value) + 1n)
    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(dataKey)).toBe(true)
  })

  it('refuses the words of someone else (in process: the command function)', async () => {
    const err = await keyPolicyAuthorize(
      tpm.tcti,
      join(dir, TPM2_KEY_RECORD_FILE),
      generateMnemonic(),
    ).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toBe('TPM_POLICY')
    expect((err as { details?: Doc }).details?.reason).toBe('wrong-words')
  })

  it('says when the key is not PCR-bound', async () => {
    const plain = await mkdtemp(join(tmpdir(), 'pi-node-key-policy-plain-'))
    try {
      await saveConfig(config(plain, 0x81000041))
      await tpm2Sealer({
        tcti: tpm.tcti,
        handle: 0x81000041,
        createIfMissing: true,
        keyRecordFile: join(plain, TPM2_KEY_RECORD_FILE),
        logger: quiet,
      }).publicKey()
      const shown = await keyPolicyView(tpm.tcti, join(plain, TPM2_KEY_RECORD_FILE))
      expect(shown).toMatchObject({ version: 1, pcrBound: false })
    } finally {
      await rm(plain, { recursive: true, force: true })
    }
  })
})
