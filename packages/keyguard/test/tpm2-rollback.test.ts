/**
 * Rollback of PCR approvals (ADR 0094) on a real swtpm that reboots (same state, PCRs reset):
 * the owner approves the boot of system A, then of system B after an update. Someone who kept
 * the record of A's approval (a copied SD card) boots A again and replays it: the TPM refuses
 * (`approval-superseded`), B's approval is needed and unwraps in B. The attacker's NV paths —
 * deleting the epoch counter, defining it again with other attributes or an index he can
 * write, incrementing it without the owner's key — never bring A back. Before ADR 0094 the
 * replayed approval unwrapped.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  derivePolicyAuthKey,
  generateMnemonic,
  keyPolicyAuthorize,
  keyPolicyView,
  type PolicyAuthKey,
  readKeyRecord,
  renderKeyPolicy,
  type Sealer,
  TpmPolicyError,
  tpm2Sealer,
  type WrappedKey,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const PCRS = [7, 16]
const HANDLE = 0x81000041
const INDEX = '0x01800041' // the counter paired with HANDLE (epochIndexFor)
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm | undefined
let stateDir: string
let dir: string
let recordFile: string
let words: string
let authKey: PolicyAuthKey
let dataKey: Uint8Array
let wrapped: WrappedKey
/** The record as it was right after A's approval: what the attacker copied. */
let recordA: string

const measure = (what: string) => createHash('sha256').update(what).digest('hex')
const tools = () => ({ env: { TPM2TOOLS_TCTI: tpm!.tcti } })

/** Reboots the TPM (PCRs reset, NV kept) and measures `system` into PCRs 7 and 16. */
async function boot(system: string): Promise<void> {
  await tpm?.stop()
  tpm = await startSwtpm({ stateDir })
  for (const pcr of PCRS) {
    await execa('tpm2_pcrextend', [`${pcr}:sha256=${measure(`${system}/${pcr}`)}`], tools())
  }
}

/** The node's sealer as a (re)started process builds it on the current boot's TPM. */
function sealer(createIfMissing = false): Sealer {
  return tpm2Sealer({
    tcti: tpm!.tcti,
    handle: HANDLE,
    keyRecordFile: recordFile,
    createIfMissing,
    pcrPolicy: { authKey: authKey.publicKey, pcrs: PCRS },
    logger: quiet,
  })
}

async function unwrapsAs(expected: Uint8Array): Promise<boolean> {
  const key = await sealer().unwrap(wrapped)
  return Buffer.from(key).equals(Buffer.from(expected))
}

async function refusal(): Promise<TpmPolicyError> {
  const err = await sealer()
    .unwrap(wrapped)
    .catch((e: unknown) => e)
  expect(err).toBeInstanceOf(TpmPolicyError)
  return err as TpmPolicyError
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'kg-rollback-tpm-'))
  dir = await mkdtemp(join(tmpdir(), 'kg-rollback-'))
  recordFile = join(dir, 'tpm2-key.json')
  words = generateMnemonic()
  authKey = await derivePolicyAuthKey(words)
  dataKey = new Uint8Array(randomBytes(32))
  await boot('A')
  const s = sealer(true)
  await s.publicKey()
  await keyPolicyAuthorize(tpm!.tcti, recordFile, words)
  wrapped = await s.wrap(dataKey)
  expect(await unwrapsAs(dataKey)).toBe(true)
  recordA = await readFile(recordFile, 'utf8')
  // The owner updates to B and approves it.
  await boot('B')
  await keyPolicyAuthorize(tpm!.tcti, recordFile, words)
  expect(await unwrapsAs(dataKey)).toBe(true)
}, 120_000)

afterAll(async () => {
  await tpm?.stop()
  await rm(stateDir, { recursive: true, force: true })
  await rm(dir, { recursive: true, force: true })
})

describe('an old PCR approval after the owner approved new values (swtpm)', () => {
  it('booting A again: the replayed approval of A is refused; B’s approval is needed, and unwraps in B', async () => {
    const recordB = await readFile(recordFile, 'utf8')
    await boot('A')
    // B's approval in A: the PCRs differ.
    expect((await refusal()).details.reason).toBe('pcr-mismatch')
    // The attacker puts A's approval back (an old copy of the record): refused by the TPM.
    await writeFile(recordFile, recordA)
    const replayed = await refusal()
    expect(replayed.details).toMatchObject({
      reason: 'approval-superseded',
      command: 'TPM2_PolicyNV',
      base: '0x126', // TPM_RC_POLICY: the counter is not at A's epoch
    })
    expect(replayed.hint).toMatch(/key-policy authorize/)

    await writeFile(recordFile, recordB)
    await boot('B')
    expect(await unwrapsAs(dataKey)).toBe(true)
  })

  it('the record says the key is rollback-protected; show reports the epoch; describe says so', async () => {
    const record = await readKeyRecord(recordFile)
    expect(record?.version).toBe(3)
    expect(record?.policy?.epochIndex?.handle).toBe(Number(INDEX))
    const view = await keyPolicyView(tpm!.tcti, recordFile)
    expect(view.rollback?.protected).toBe(true)
    expect(view.rollback?.epoch).toMatchObject({ index: INDEX, state: 'ok' })
    expect(view.rollback?.epoch?.approved).toBe(view.rollback?.epoch?.value)
    expect(renderKeyPolicy(view)).toMatch(/rollback protection: epoch counter 0x01800041 at \d+/)
    expect(renderKeyPolicy(view)).toMatch(/the TPM will unwrap/)
    const described = await sealer().describe()
    expect(String(described.details?.rollbackProtection)).toMatch(/only the newest approval/)
  })

  it('without the owner key the counter cannot be moved, and a stranger’s write is refused', async () => {
    const before = (await keyPolicyView(tpm!.tcti, recordFile)).rollback?.epoch?.value
    expect(before).toMatch(/^[0-9]+$/)
    const increment = await execa('tpm2_nvincrement', [INDEX, '-C', INDEX], {
      ...tools(),
      reject: false,
    })
    expect(increment.exitCode).not.toBe(0)
    const owner = await execa('tpm2_nvincrement', [INDEX, '-C', 'o'], { ...tools(), reject: false })
    expect(owner.exitCode).not.toBe(0)
    expect((await keyPolicyView(tpm!.tcti, recordFile)).rollback?.epoch?.value).toBe(before)
    expect(await unwrapsAs(dataKey)).toBe(true)
  })

  it('deleting the counter, or defining another index there (any attributes, A’s epoch written), never restores A', async () => {
    const recordB = await readFile(recordFile, 'utf8')
    const epochA = JSON.parse(recordA).policy.approval.epoch as string
    const epochBytes = Buffer.alloc(8)
    epochBytes.writeBigUInt64BE(BigInt(epochA))
    await boot('A')
    await writeFile(recordFile, recordA)

    // 1. Deleted with the owner's (empty) authorization: nothing unwraps, A included.
    await execa('tpm2_nvundefine', [INDEX, '-C', 'o'], tools())
    expect((await refusal()).details.reason).toBe('epoch-index-missing')

    // 2. An ordinary index he can write, holding A's epoch: PolicyNV passes, but its name is
    //    not the counter's, so the approved policy does not match.
    await execa(
      'tpm2_nvdefine',
      [INDEX, '-C', 'o', '-s', '8', '-a', 'ownerwrite|ownerread|authread|authwrite|no_da'],
      tools(),
    )
    await execa('tpm2_nvwrite', [INDEX, '-C', 'o', '-i-'], { ...tools(), input: epochBytes })
    expect((await refusal()).details.reason).toBe('epoch-index-replaced')
    await execa('tpm2_nvundefine', [INDEX, '-C', 'o'], tools())

    // 3. A counter he can increment (owner write): it starts above every value a counter of
    //    this TPM held, so A's epoch never comes back — and its name differs anyway.
    await execa(
      'tpm2_nvdefine',
      [INDEX, '-C', 'o', '-s', '8', '-a', 'nt=counter|ownerwrite|authread|no_da'],
      tools(),
    )
    await execa('tpm2_nvincrement', [INDEX, '-C', 'o'], tools())
    const counter = await execa('tpm2_nvread', [INDEX, '-C', INDEX, '-s', '8'], {
      ...tools(),
      encoding: 'buffer',
    })
    expect(Buffer.from(counter.stdout).readBigUInt64BE() > BigInt(epochA)).toBe(true)
    expect(['approval-superseded', 'epoch-index-replaced']).toContain(
      (await refusal()).details.reason,
    )

    // 4. The owner's very attributes and write policy (all public): he cannot increment it,
    //    and unwritten it is not the counter the approval names.
    await execa('tpm2_nvundefine', [INDEX, '-C', 'o'], tools())
    const record = await readKeyRecord(recordFile)
    const { epochIndexPublic } = await import('../src/index.ts')
    const pub = epochIndexPublic(
      Number(INDEX),
      record!.policy!.authKey,
      record!.policy!.epochIndex!.writeRef!,
      false,
    )
    const policyFile = join(dir, 'write-policy')
    await writeFile(policyFile, pub.authPolicy)
    await execa(
      'tpm2_nvdefine',
      [
        INDEX,
        '-C',
        'o',
        '-s',
        '8',
        '-L',
        policyFile,
        '-a',
        'nt=counter|policywrite|authread|no_da',
      ],
      tools(),
    )
    const noKey = await execa('tpm2_nvincrement', [INDEX, '-C', INDEX], {
      ...tools(),
      reject: false,
    })
    expect(noKey.exitCode).not.toBe(0)
    expect((await refusal()).details.reason).toBe('epoch-index-missing')

    // The owner, in B again, approves with the words: the counter is defined afresh, B
    // unwraps; A's approval still does not, in A.
    await writeFile(recordFile, recordB)
    await boot('B')
    const shown = renderKeyPolicy(await keyPolicyView(tpm!.tcti, recordFile))
    expect(shown).toMatch(/NOT-OURS|UNWRITTEN/)
    await keyPolicyAuthorize(tpm!.tcti, recordFile, words)
    expect(await unwrapsAs(dataKey)).toBe(true)
    const recordB2 = await readFile(recordFile, 'utf8')
    await boot('A')
    await writeFile(recordFile, recordA)
    expect(['approval-superseded', 'epoch-index-replaced']).toContain(
      (await refusal()).details.reason,
    )
    await writeFile(recordFile, recordB)
    expect(['approval-superseded', 'epoch-index-replaced', 'pcr-mismatch']).toContain(
      (await refusal()).details.reason,
    )
    await writeFile(recordFile, recordB2)
    expect((await refusal()).details.reason).toBe('pcr-mismatch')
  })
})
