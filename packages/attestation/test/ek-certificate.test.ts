/**
 * The EK certificate (SPEC.md §9, ADR 0069) on real swtpms, one manufactured as a TPM maker
 * does (`swtpm_setup --create-ek-cert`: an EK certificate in NV, issued by that maker's CA) and
 * one without. With trusted EK roots, a verifier activates only a record whose EK a trusted maker
 * certified: a record without a certificate (an EK made by anyone, a key pair in software
 * included), one certified by another maker, or one whose certificate names another EK is
 * refused before any credential is made; over real libp2p, `requireAttestedRelease` releases
 * nothing to it.
 */
import { execFile } from 'node:child_process'
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { DigicapError } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AttestationAgent,
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '../src/agent/index.ts'
import {
  ATTESTATION_RECORD_VERSION,
  ATTESTATION_RECORD_VERSION_EK_CERTIFICATE,
  type AttestationRecord,
  AttestationRefusedError,
  attestationRecordHash,
  createActivationCache,
  decodeAttestationRecord,
  EkCertificateError,
  type EkRoots,
  encodeAttestationRecord,
  parseEkRoots,
  requireAttestedRelease,
  verifyEkCertificate,
} from '../src/index.ts'
import { createPair } from './helpers/nodes.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const run = promisify(execFile)

let certified: Swtpm
let otherMaker: Swtpm
let plain: Swtpm
let certifiedAgent: AttestationAgent
let plainAgent: AttestationAgent
let record: AttestationRecord
let plainRecord: AttestationRecord
let otherRecord: AttestationRecord
let roots: EkRoots
let otherRoots: EkRoots

function reasonOf(run: () => unknown): unknown {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(EkCertificateError)
    expect((err as DigicapError).code).toBe('EK_CERTIFICATE')
    return (err as DigicapError).details.reason
  }
  return 'passed'
}

beforeAll(async () => {
  ;[certified, otherMaker, plain] = await Promise.all([
    startSwtpm({ ekCertificate: true }),
    startSwtpm({ ekCertificate: true }),
    startSwtpm(),
  ])
  roots = parseEkRoots(certified.ekRoots as string)
  otherRoots = parseEkRoots(otherMaker.ekRoots as string)
  certifiedAgent = createAttestationAgent({ tcti: certified.tcti })
  plainAgent = createAttestationAgent({ tcti: plain.tcti })
  await certifiedAgent.resetRunPcr()
  record = await recordFromAgent(certifiedAgent)
  plainRecord = await recordFromAgent(plainAgent)
  otherRecord = await recordFromAgent(createAttestationAgent({ tcti: otherMaker.tcti }))
}, 120_000)

afterAll(async () => {
  await Promise.all([certified?.stop(), otherMaker?.stop(), plain?.stop()])
})

describe('the EK certificate', () => {
  it('is read from the NV of a manufactured TPM and carried by a version 2 record', () => {
    expect(record.ekCertificate?.length).toBeGreaterThan(300)
    expect(plainRecord.ekCertificate).toBeUndefined()
    const encoded = encodeAttestationRecord(record)
    expect(encoded[4]).toBe(ATTESTATION_RECORD_VERSION_EK_CERTIFICATE)
    const decoded = decodeAttestationRecord(encoded)
    expect(Buffer.from(decoded.ekCertificate as Uint8Array)).toEqual(
      Buffer.from(record.ekCertificate as Uint8Array),
    )
    expect(attestationRecordHash(decoded)).toEqual(attestationRecordHash(record))
    // a record without one is version 1, byte for byte as before
    const plainBytes = encodeAttestationRecord(plainRecord)
    expect(plainBytes[4]).toBe(ATTESTATION_RECORD_VERSION)
    expect(decodeAttestationRecord(plainBytes).ekCertificate).toBeUndefined()
    // truncated or trailing certificate bytes are refused with the field named
    expect(() => decodeAttestationRecord(encoded.subarray(0, encoded.length - 1))).toThrow(
      /Truncated/,
    )
    const trailing = new Uint8Array(encoded.length + 1)
    trailing.set(encoded)
    expect(() => decodeAttestationRecord(trailing)).toThrow(/Trailing/)
  })

  it('makes the EK a TPM’s only for the maker that issued it, and only for that EK', () => {
    expect(reasonOf(() => verifyEkCertificate(record.ekPublic, record.ekCertificate, roots))).toBe(
      'passed',
    )
    // no certificate: an EK anyone could have made, a key pair in software included
    expect(
      reasonOf(() => verifyEkCertificate(plainRecord.ekPublic, plainRecord.ekCertificate, roots)),
    ).toBe('missing')
    // another maker's TPM
    expect(
      reasonOf(() => verifyEkCertificate(otherRecord.ekPublic, otherRecord.ekCertificate, roots)),
    ).toBe('untrusted')
    expect(
      reasonOf(() => verifyEkCertificate(record.ekPublic, record.ekCertificate, otherRoots)),
    ).toBe('untrusted')
    // a genuine certificate shown with another EK (the certified TPM's, borrowed)
    expect(
      reasonOf(() => verifyEkCertificate(plainRecord.ekPublic, record.ekCertificate, roots)),
    ).toBe('key-mismatch')
    // outside its validity
    expect(
      reasonOf(() =>
        verifyEkCertificate(record.ekPublic, record.ekCertificate, roots, new Date(0)),
      ),
    ).toBe('expired')
    // bytes that are no certificate
    expect(reasonOf(() => verifyEkCertificate(record.ekPublic, bytes(400), roots))).toBe(
      'malformed',
    )
    expect(reasonOf(() => parseEkRoots('not a certificate'))).toBe('malformed')
  })

  it('is no CA, serves no other purpose, and is issued by a CA of the bundle', async () => {
    const ca = join(certified.stateDir, 'ca')
    const pem = (der: Uint8Array) =>
      `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`
    // a bundle certificate that is no CA (an EK certificate) cannot be an anchor
    expect(reasonOf(() => parseEkRoots(pem(record.ekCertificate as Uint8Array)))).toBe('malformed')
    // the maker's CA certificate shown as an EK certificate: a CA, not an EK's
    const issuer = new X509Certificate(await readFile(join(ca, 'issuercert.pem')))
    expect(reasonOf(() => verifyEkCertificate(record.ekPublic, issuer.raw, roots))).toBe(
      'untrusted',
    )
    // a TLS server's certificate, for the record's own EK, signed by the maker's CA key: issued
    // for another purpose
    const dir = await mkdtemp(join(tmpdir(), 'digicap-ek-'))
    try {
      const ekKey = new X509Certificate(record.ekCertificate as Uint8Array).publicKey
      await writeFile(join(dir, 'ek.pub.pem'), ekKey.export({ type: 'spki', format: 'pem' }))
      await writeFile(
        join(dir, 'ext.cnf'),
        'extendedKeyUsage = serverAuth\nbasicConstraints = CA:FALSE\n',
      )
      // a throwaway key signs the request; -force_pubkey puts the EK's key in the certificate
      await run('openssl', [
        'req',
        '-new',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'k.pem'),
        '-subj',
        '/CN=tls',
        '-out',
        join(dir, 'r.csr'),
      ])
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        join(dir, 'r.csr'),
        '-CA',
        join(ca, 'issuercert.pem'),
        '-CAkey',
        join(ca, 'signkey.pem'),
        '-CAcreateserial',
        '-days',
        '30',
        '-force_pubkey',
        join(dir, 'ek.pub.pem'),
        '-extfile',
        join(dir, 'ext.cnf'),
        '-outform',
        'DER',
        '-out',
        join(dir, 'tls.der'),
      ])
      const tls = new Uint8Array(await readFile(join(dir, 'tls.der')))
      expect(new X509Certificate(tls).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1'])
      expect(reasonOf(() => verifyEkCertificate(record.ekPublic, tls, roots))).toBe('untrusted')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('gates the release: with EK roots, only the certified TPM’s record is activated', async () => {
    const pair = await createPair()
    const stops: (() => Promise<void>)[] = []
    try {
      // one activation cache for every call, as one keyguard process has
      const activations = createActivationCache()
      const release = (agentRecord: AttestationRecord, ekRoots?: EkRoots) =>
        requireAttestedRelease(pair.a, {
          peer: pair.b.peerId,
          grantId: bytes(),
          ephemeralKey: bytes(),
          record: agentRecord,
          registeredHash: attestationRecordHash(agentRecord),
          activations,
          ...(ekRoots === undefined ? {} : { ekRoots }),
        })
      stops.push(await serveAttestation(pair.b, certifiedAgent))
      const clock = await release(record, roots)
      expect(clock.resetCount).toBeGreaterThanOrEqual(0)
      await stops.pop()?.()

      // the plain TPM answers every challenge truly, and passes without roots...
      await plainAgent.resetRunPcr()
      stops.push(await serveAttestation(pair.b, plainAgent))
      await release(plainRecord)
      // ...but with roots nothing of it is trusted, though its record is activated (cached)
      // already: the certificate is checked on every call, before the cache
      const err = await release(plainRecord, roots).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(AttestationRefusedError)
      expect((err as DigicapError).details).toMatchObject({
        reason: 'ek-untrusted',
        check: 'missing',
      })
    } finally {
      for (const stop of stops) await stop()
      await pair.stop()
    }
  }, 60_000)
})
