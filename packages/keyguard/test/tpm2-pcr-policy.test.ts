/**
 * The PCR-bound wrapping key on a real swtpm: created with an authorized policy
 * (PolicyAuthorize of the owner's key derived from the paper words), it unwraps only after the
 * owner approved the TPM's PCR values; extending a PCR makes the TPM refuse with a typed error
 * naming the PCR; approving the new values makes it work again without re-wrapping; the paper
 * words still open every key while the TPM refuses; an approval by anyone else is refused.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nvName } from '@digicap/tpm'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceEpoch,
  authorizePcrPolicy,
  deriveOwnerIdentity,
  derivePolicyAuthKey,
  epochIndexPublic,
  generateMnemonic,
  type PolicyAuthKey,
  readKeyRecord,
  readPcrValues,
  type Sealer,
  signPcrApproval,
  TpmPolicyError,
  tpm2Sealer,
  unwrapDataKey,
  unwrapWithRecoveryKey,
  wrapDataKey,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const PCRS = [7, 16]
const HANDLE = 0x81000031
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm
let dir: string
let recordFile: string
let words: string
let authKey: PolicyAuthKey
let sealer: Sealer

async function extend(pcr: number): Promise<void> {
  await execa('tpm2_pcrextend', [`${pcr}:sha256=${randomBytes(32).toString('hex')}`], {
    env: { TPM2TOOLS_TCTI: tpm.tcti },
  })
}

/** What key-policy authorize does: the epoch counter moved on, the current values signed. */
async function approveCurrent(key: PolicyAuthKey = authKey) {
  const record = await readKeyRecord(recordFile)
  const epoch = await advanceEpoch(tpm.tcti, record!, key)
  const approval = signPcrApproval(key, PCRS, await readPcrValues(tpm.tcti, PCRS), {
    index: epoch.index,
    name: epoch.name,
    value: epoch.value,
  })
  return authorizePcrPolicy(recordFile, approval, {
    handle: epoch.index,
    writeRef: epoch.writeRef,
  })
}

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-pcr-'))
  recordFile = join(dir, 'tpm2-key.json')
  words = generateMnemonic()
  authKey = await derivePolicyAuthKey(words)
  sealer = tpm2Sealer({
    tcti: tpm.tcti,
    handle: HANDLE,
    createIfMissing: true,
    keyRecordFile: recordFile,
    pcrPolicy: { authKey: authKey.publicKey, pcrs: PCRS },
    logger: quiet,
  })
  await sealer.publicKey()
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('PCR-bound wrapping key with an authorized policy (swtpm)', () => {
  it('records the policy (version 3: with its epoch counter) and refuses to unwrap before any PCR set is approved', async () => {
    const record = await readKeyRecord(recordFile)
    expect(record?.version).toBe(3)
    expect(record?.policy?.epochIndex?.handle).toBe(0x01800031)
    expect(record?.policy?.pcrs).toEqual(PCRS)
    expect(record?.policy?.approval).toBeUndefined()
    const wrapped = await sealer.wrap(randomBytes(32))
    const err = await sealer.unwrap(wrapped).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmPolicyError)
    expect((err as TpmPolicyError).details.reason).toBe('not-authorized')
  })

  it('unwraps after approval; a PCR extend makes the TPM refuse, naming the PCR; a new approval works without re-wrapping', async () => {
    const dataKey = new Uint8Array(randomBytes(32))
    const wrapped = await sealer.wrap(dataKey)
    await approveCurrent()
    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(Buffer.from(dataKey))).toBe(true)

    await extend(16)
    const err = await sealer.unwrap(wrapped).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmPolicyError)
    expect((err as TpmPolicyError).code).toBe('TPM_POLICY')
    expect((err as TpmPolicyError).details).toMatchObject({
      reason: 'pcr-mismatch',
      differing: [16],
    })
    // The TPM's response code, decoded: TPM_RC_VALUE on PolicyPCR's first parameter.
    expect((err as TpmPolicyError).details).toMatchObject({
      command: 'TPM2_PolicyPCR',
      rc: '0x1c4',
      base: '0x084',
      parameter: 1,
    })
    expect((err as TpmPolicyError).message).toMatch(/PCR 16 is not the value the owner authorized/)
    expect((err as TpmPolicyError).hint).toMatch(/key-policy authorize/)

    // The owner approves the new value with the paper words: the same wrapped key unwraps.
    const owner = await derivePolicyAuthKey(words)
    await approveCurrent(owner)
    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(Buffer.from(dataKey))).toBe(true)
    // A sealer started afresh on the record works too.
    const restarted = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      keyRecordFile: recordFile,
      logger: quiet,
    })
    expect(Buffer.from(await restarted.unwrap(wrapped)).equals(Buffer.from(dataKey))).toBe(true)
  })

  it('the paper words still open every key while the TPM refuses', async () => {
    const identity = await deriveOwnerIdentity(words)
    const dataKey = new Uint8Array(randomBytes(32))
    const copies = await wrapDataKey(dataKey, {
      sealer,
      recoveryPublicKey: identity.recoveryKeyPair.publicKey,
    })
    await extend(7)
    await expect(unwrapDataKey(copies, sealer)).rejects.toBeInstanceOf(TpmPolicyError)
    const recovery = copies.find((c) => c.scheme === 'hpke-x25519-recovery')!
    const opened = await unwrapWithRecoveryKey(recovery, identity.recoveryKeyPair.privateKey)
    expect(Buffer.from(opened).equals(Buffer.from(dataKey))).toBe(true)
    await approveCurrent()
  })

  it('refuses an approval signed by other words, in software and in the TPM', async () => {
    const wrapped = await sealer.wrap(randomBytes(32))
    const stranger = await derivePolicyAuthKey(generateMnemonic())
    await extend(16)
    // The stranger signs the current values at the counter's current epoch, the counter
    // named as it would be for his key (all public).
    const record = (await readKeyRecord(recordFile))!
    const current = record.policy!.approval!.epoch!
    const writeRef = record.policy!.epochIndex!.writeRef!
    const forgedName = nvName(epochIndexPublic(current.index, stranger.publicKey, writeRef))
    const forged = signPcrApproval(stranger, PCRS, await readPcrValues(tpm.tcti, PCRS), {
      ...current,
      name: forgedName,
    })
    const err = await authorizePcrPolicy(recordFile, forged).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmPolicyError)
    expect((err as TpmPolicyError).details.reason).toBe('approval-invalid')

    // Someone rewrites the record by hand, authorizing key and all: a restarted sealer refuses
    // the record (the key's authPolicy names the owner's key) …
    const json = JSON.parse(await readFile(recordFile, 'utf8'))
    json.policy.authKey = {
      x: Buffer.from(stranger.publicKey.x).toString('hex'),
      y: Buffer.from(stranger.publicKey.y).toString('hex'),
    }
    json.policy.approval = {
      pcrValues: Object.fromEntries(
        [...forged.pcrValues].map(([p, v]) => [String(p), Buffer.from(v).toString('hex')]),
      ),
      pcrDigest: Buffer.from(forged.pcrDigest).toString('hex'),
      approvedPolicy: Buffer.from(forged.approvedPolicy).toString('hex'),
      signature: {
        r: Buffer.from(forged.signature.r).toString('hex'),
        s: Buffer.from(forged.signature.s).toString('hex'),
      },
      epoch: String(current.value),
    }
    await writeFile(recordFile, JSON.stringify(json))
    const restarted = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      keyRecordFile: recordFile,
      logger: quiet,
    })
    const refused = await restarted.unwrap(wrapped).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(TpmPolicyError)
    expect((refused as TpmPolicyError).details.reason).toBe('unknown-policy')
    // … and the running sealer, which reads the forged approval, is refused by the TPM itself:
    // the policy it approves names a counter that is not the TPM's.
    const tpmRefused = await sealer.unwrap(wrapped).catch((e: unknown) => e)
    expect(tpmRefused).toBeInstanceOf(TpmPolicyError)
    expect((tpmRefused as TpmPolicyError).details).toMatchObject({
      reason: 'epoch-index-replaced',
      command: 'TPM2_PolicyAuthorize',
      base: '0x084', // TPM_RC_VALUE: the session's digest is not the approved policy
    })
  })
})
