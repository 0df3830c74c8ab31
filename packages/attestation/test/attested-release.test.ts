/**
 * The `attested()` release gate on a real swtpm over real libp2p: a keyguard-side check
 * releases only to an ephemeral key that appears in a valid before-quote of the executor's
 * registered AK. An executor without a registered record, with a record that is not the
 * registered one, quoting with another AK, in the middle of another run, with a changed boot
 * PCR, not answering, or whose AK its TPM cannot activate against the record's EK (an AK of
 * another swtpm claimed under this EK) is refused with `ATTESTATION_REFUSED` and the reason;
 * activation runs once per record hash.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { DigicapError } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AttestationAgent,
  createAttestationAgent,
  serveAttestation,
} from '../src/agent/index.ts'
import {
  type AttestationRecord,
  AttestationRecordError,
  AttestationRefusedError,
  attestationRecordHash,
  createActivationCache,
  decodeAttestationRecord,
  encodeAttestationRecord,
  requireAttestedRelease,
} from '../src/index.ts'
import { createPair } from './helpers/nodes.ts'

const run = promisify(execFile)
const bytes = (n = 32) => new Uint8Array(randomBytes(n))
/** `a` challenges `b` as its keyguard: a trusted challenger, not rate-limited (ADR 0067). */
const keyguardOf = (p: { a: { peerId: { toString(): string } } }) => ({
  trustedChallengers: (peer: string) => peer === p.a.peerId.toString(),
})

let tpm: Swtpm
let agent: AttestationAgent
let otherAgent: AttestationAgent
let record: AttestationRecord
let otherRecord: AttestationRecord
let pair: Awaited<ReturnType<typeof createPair>>

async function recordOf(a: AttestationAgent): Promise<AttestationRecord> {
  const keys = await a.provision()
  const q = await a.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
  return { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
}

beforeAll(async () => {
  tpm = await startSwtpm()
  agent = createAttestationAgent({ tcti: tpm.tcti })
  otherAgent = createAttestationAgent({ tcti: tpm.tcti, akHandle: 0x81010011 })
  await agent.resetRunPcr()
  record = await recordOf(agent)
  otherRecord = await recordOf(otherAgent)
  pair = await createPair()
}, 120_000)

afterAll(async () => {
  await pair?.stop()
  await tpm?.stop()
})

async function refusal(p: Promise<unknown>): Promise<Record<string, unknown>> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(AttestationRefusedError)
  expect((err as DigicapError).code).toBe('ATTESTATION_REFUSED')
  return (err as DigicapError).details
}

describe('requireAttestedRelease', () => {
  it('passes for the registered AK with PCR 23 reset, and refuses every wrong case', async () => {
    const stop = await serveAttestation(pair.b, agent, keyguardOf(pair))
    const base = {
      peer: pair.b.peerId,
      grantId: bytes(),
      ephemeralKey: bytes(),
      record,
      registeredHash: attestationRecordHash(record),
    }
    try {
      const clock = await requireAttestedRelease(pair.a, base)
      expect(clock.resetCount).toBeGreaterThanOrEqual(0)
      // the clock of an accepted quote serves as `previous` for the next one
      await requireAttestedRelease(pair.a, { ...base, previous: clock })

      expect(
        await refusal(
          requireAttestedRelease(pair.a, { ...base, registeredHash: new Uint8Array(32) }),
        ),
      ).toMatchObject({ reason: 'unregistered' })
      expect(
        await refusal(
          requireAttestedRelease(pair.a, {
            ...base,
            registeredHash: attestationRecordHash(otherRecord),
          }),
        ),
      ).toMatchObject({ reason: 'record-mismatch' })
      // registered: another AK of the same TPM (same EK); the executor's TPM cannot activate
      // a credential for it with its own AK, and once activated, its quotes still fail
      const forOther = {
        ...base,
        record: otherRecord,
        registeredHash: attestationRecordHash(otherRecord),
      }
      expect(await refusal(requireAttestedRelease(pair.a, forOther))).toMatchObject({
        reason: 'not-activated',
      })
      const activated = createActivationCache()
      activated.add(forOther.registeredHash)
      expect(
        await refusal(requireAttestedRelease(pair.a, { ...forOther, activations: activated })),
      ).toMatchObject({ reason: 'evidence', check: 'QUOTE_SIGNER' })

      // mid-run of another grant: PCR 23 is not at its reset value
      await agent.beginRun({
        runtimeDigest: bytes(),
        capsuleHeaderHash: bytes(),
        grantId: bytes(),
        ephemeralPublicKey: bytes(),
      })
      expect(await refusal(requireAttestedRelease(pair.a, base))).toMatchObject({
        reason: 'evidence',
        check: 'QUOTE_RUN_PCR',
      })
      await agent.endRun({ grantId: bytes(), workspaceRemoved: true, keyBuffersWiped: true })
      await requireAttestedRelease(pair.a, base)

      // a boot measurement changed since registration
      await run('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`], {
        env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
      })
      expect(await refusal(requireAttestedRelease(pair.a, base))).toMatchObject({
        reason: 'evidence',
        check: 'QUOTE_BOOT_PCRS',
      })
    } finally {
      await stop()
    }
    // nobody answers the protocol any more
    expect(
      await refusal(requireAttestedRelease(pair.a, { ...base, record }, { timeout: 3000 })),
    ).toMatchObject({ reason: 'unreachable' })
  })
})

describe('requireAttestedRelease with only the registered hash', () => {
  it('takes the record from the evidence, and refuses a missing or foreign one', async () => {
    const other = await createPair()
    try {
      const registeredHash = attestationRecordHash(record)
      const base = { grantId: bytes(), ephemeralKey: bytes(), registeredHash }
      await agent.resetRunPcr()
      // boot PCR 7 was extended above: this record is the one the node registers now
      const current = await recordOf(agent)
      const stop = await serveAttestation(other.b, agent, {
        ...keyguardOf(other),
        record: encodeAttestationRecord(current),
      })
      await requireAttestedRelease(other.a, {
        ...base,
        peer: other.b.peerId,
        registeredHash: attestationRecordHash(current),
      })
      // the evidence's record is not the registered one
      expect(
        await refusal(requireAttestedRelease(other.a, { ...base, peer: other.b.peerId })),
      ).toMatchObject({ reason: 'record-mismatch' })
      await stop()
      // an executor that sends no record
      const stop2 = await serveAttestation(other.b, agent, keyguardOf(other))
      expect(
        await refusal(requireAttestedRelease(other.a, { ...base, peer: other.b.peerId })),
      ).toMatchObject({ reason: 'record-mismatch' })
      await stop2()
      // an executor that sends another AK's record (registered) but quotes with this AK
      const stop3 = await serveAttestation(other.b, agent, {
        ...keyguardOf(other),
        record: encodeAttestationRecord(otherRecord),
      })
      expect(
        await refusal(
          requireAttestedRelease(other.a, {
            ...base,
            peer: other.b.peerId,
            registeredHash: attestationRecordHash(otherRecord),
          }),
        ),
      ).toMatchObject({ reason: 'not-activated' })
      await stop3()
    } finally {
      await other.stop()
    }
  })
})

describe('credential activation in requireAttestedRelease', () => {
  it('runs once per record hash, and refuses an AK of another TPM claimed under this EK', async () => {
    const second = await startSwtpm()
    const other = await createPair()
    try {
      await agent.resetRunPcr()
      const current = await recordOf(agent)
      let activations = 0
      const counted = {
        quote: agent.quote,
        activateCredential: (c: Parameters<AttestationAgent['activateCredential']>[0]) => {
          activations++
          return agent.activateCredential(c)
        },
      }
      let stop = await serveAttestation(other.b, counted, keyguardOf(other))
      const base = {
        peer: other.b.peerId,
        grantId: bytes(),
        ephemeralKey: bytes(),
        record: current,
        registeredHash: attestationRecordHash(current),
      }
      const cache = createActivationCache()
      await requireAttestedRelease(other.a, { ...base, activations: cache })
      await requireAttestedRelease(other.a, { ...base, activations: cache })
      expect(activations).toBe(1)
      await requireAttestedRelease(other.a, { ...base, activations: createActivationCache() })
      expect(activations).toBe(2)
      await stop()

      // An AK made on another TPM, registered under this TPM's EK. The executor quotes with
      // it (it holds that TPM) and tries both TPMs for the activation: neither recovers the
      // secret, because the seed is wrapped to this EK and the HMAC binds the foreign AK's name.
      const foreign = createAttestationAgent({ tcti: second.tcti })
      const foreignRecord = await recordOf(foreign)
      const claimed: AttestationRecord = { ...foreignRecord, ekPublic: current.ekPublic }
      const claim = {
        ...base,
        record: claimed,
        registeredHash: attestationRecordHash(claimed),
        activations: createActivationCache(),
      }
      for (const activateCredential of [foreign.activateCredential, agent.activateCredential]) {
        stop = await serveAttestation(
          other.b,
          { quote: foreign.quote, activateCredential },
          keyguardOf(other),
        )
        expect(await refusal(requireAttestedRelease(other.a, claim))).toMatchObject({
          reason: 'not-activated',
        })
        await stop()
      }
      // an executor that makes up an answer, or has no activation at all
      for (const served of [
        { quote: foreign.quote, activateCredential: async () => bytes() },
        { quote: foreign.quote },
      ]) {
        stop = await serveAttestation(other.b, served, keyguardOf(other))
        expect(await refusal(requireAttestedRelease(other.a, claim))).toMatchObject({
          reason: 'not-activated',
        })
        await stop()
      }
      // nothing was cached for the refused record
      expect(claim.activations.has(claim.registeredHash)).toBe(false)
    } finally {
      await other.stop()
      await second.stop()
    }
  }, 120_000)
})

describe('attestation record', () => {
  it('round-trips and refuses malformed bytes with the field', () => {
    const bytes_ = encodeAttestationRecord(record)
    const back = decodeAttestationRecord(bytes_)
    expect(Buffer.from(encodeAttestationRecord(back))).toEqual(Buffer.from(bytes_))
    expect(Buffer.from(attestationRecordHash(bytes_))).toEqual(
      Buffer.from(attestationRecordHash(record)),
    )
    const cases: [Uint8Array, string][] = [
      [bytes_.subarray(0, bytes_.length - 1), 'bootPcrs[7]'],
      [Uint8Array.from([...bytes_, 0]), 'end'],
      [Uint8Array.from([0x45, ...bytes_.subarray(1)]), 'magic'],
      [Uint8Array.from([...bytes_.subarray(0, 4), 3, ...bytes_.subarray(5)]), 'version'],
      // version 2 promises an EK certificate after the PCRs
      [Uint8Array.from([...bytes_.subarray(0, 4), 2, ...bytes_.subarray(5)]), 'ekCertificate.size'],
      [Uint8Array.from([...bytes_.subarray(0, 5), 0, 0, ...bytes_.subarray(7)]), 'ekPublic.size'],
    ]
    for (const [b, field] of cases) {
      let err: unknown
      try {
        decodeAttestationRecord(b)
      } catch (e) {
        err = e
      }
      expect(err, field).toBeInstanceOf(AttestationRecordError)
      expect((err as DigicapError).details.field).toBe(field)
    }
    // a record whose "AK" is the EK (not a signing key) does not encode
    expect(() => encodeAttestationRecord({ ...record, akPublic: record.ekPublic })).toThrow(
      DigicapError,
    )
    expect(() =>
      encodeAttestationRecord({ ...record, bootPcrs: new Map([[0, new Uint8Array(32)]]) }),
    ).toThrow(AttestationRecordError)
  })
})
