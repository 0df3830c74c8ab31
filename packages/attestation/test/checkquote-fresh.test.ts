/**
 * The cross-check on 1,000 fresh swtpm quotes: the agent quotes 500 times with an
 * RSA-2048 AK and 500 times with an ECC P-256 AK (fresh nonce each, PCR 23 moving between
 * quotes); 7 in 10 are checked as made, 3 in 10 after a tampering edit (a rotating set of 7
 * kinds, each on both AKs). Both verifiers accept every genuine quote; on the tampered ones,
 * this verifier refuses everything `tpm2_checkquote` refuses, and more (it refuses all of
 * them; tpm2_checkquote lets bytes appended to the signature through).
 *
 * Batched: every case is written to one directory and `tpm2_checkquote` runs from four shell
 * scripts in parallel, one process per quote and no node or shell per quote. Its own cost,
 * ~45 ms of CPU a run (library loading), is what the test's time is made of.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DigicapError } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AgentKeys, createAttestationAgent } from '../src/agent/index.ts'
import {
  type AttestationKey,
  importAttestationKey,
  quoteBinding,
  TPM_ALG,
  verifyQuote,
} from '../src/index.ts'
import { serializedPcrFile } from './helpers/checkquote.ts'

const run = promisify(execFile)
const PER_AK = 500
const bytes = (n = 32) => new Uint8Array(randomBytes(n))

interface Case {
  id: string
  genuine: boolean
  tamper: string
  keys: AgentKeys
  key: AttestationKey
  attest: Uint8Array
  signature: Uint8Array
  pcrValues: Map<number, Uint8Array>
  qualifyingData: Uint8Array
}

const TAMPERS = [
  'attest-bit',
  'signature-bit',
  'other-nonce',
  'pcr-value',
  'signature-appended',
  'other-ak',
  'attest-truncated',
] as const

let tpm: Swtpm
let dir: string
const cases: Case[] = []
const timings: Record<string, number> = {}

function tampered(c: Case, kind: (typeof TAMPERS)[number], other: AgentKeys): Case {
  const t: Case = { ...c, id: `${c.id}-${kind}`, genuine: false, tamper: kind }
  const flip = (b: Uint8Array, at: number) => {
    const out = b.slice()
    out[at] = (out[at] ?? 0) ^ 0x01
    return out
  }
  switch (kind) {
    case 'attest-bit':
      return { ...t, attest: flip(c.attest, c.attest.length - 40) }
    case 'signature-bit':
      return { ...t, signature: flip(c.signature, c.signature.length - 1) }
    case 'other-nonce':
      return { ...t, qualifyingData: bytes() }
    case 'pcr-value':
      return { ...t, pcrValues: new Map([...c.pcrValues, [5, bytes()]]) }
    case 'signature-appended':
      return { ...t, signature: Uint8Array.from([...c.signature, 0, 0]) }
    case 'other-ak':
      return { ...t, keys: other, key: importAttestationKey(other) }
    case 'attest-truncated':
      return { ...t, attest: c.attest.subarray(0, c.attest.length - 1) }
  }
}

beforeAll(async () => {
  let start = Date.now()
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'digicap-checkquote-fresh-'))
  const agents = [
    createAttestationAgent({ tcti: tpm.tcti, ek: 'rsa' }),
    createAttestationAgent({ tcti: tpm.tcti, ek: 'ecc', akHandle: 0x81010011 }),
  ]
  const keys = [await agents[0]!.provision(), await agents[1]!.provision()]
  timings.provision = Date.now() - start
  start = Date.now()
  let tamperCount = 0
  for (const [a, agent] of agents.entries()) {
    const own = keys[a]!
    const other = keys[1 - a]!
    const key = importAttestationKey(own)
    for (let i = 0; i < PER_AK; i++) {
      if (i % 50 === 0) await agent.resetRunPcr()
      else if (i % 7 === 0)
        await agent.beginRun({
          runtimeDigest: bytes(),
          capsuleHeaderHash: bytes(),
          grantId: bytes(),
          ephemeralPublicKey: bytes(),
        })
      const binding = { nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() }
      const q = await agent.quote(binding)
      const c: Case = {
        id: `${a === 0 ? 'rsa' : 'ecc'}${i}`,
        genuine: true,
        tamper: 'none',
        keys: own,
        key,
        attest: q.attest,
        signature: q.signature,
        pcrValues: q.pcrValues,
        qualifyingData: quoteBinding(binding),
      }
      cases.push(
        i % 10 < 7 ? c : tampered(c, TAMPERS[(tamperCount++ + a) % TAMPERS.length]!, other),
      )
    }
  }
  timings.quotes = Date.now() - start
  start = Date.now()
  for (const c of cases) {
    const d = join(dir, c.id)
    await mkdir(d)
    await Promise.all([
      writeFile(join(d, 'ak.pub'), c.keys.akPublic),
      writeFile(join(d, 'q.msg'), c.attest),
      writeFile(join(d, 'q.sig'), c.signature),
      writeFile(join(d, 'q.pcrs'), serializedPcrFile(TPM_ALG.SHA256, c.pcrValues)),
      writeFile(join(d, 'qual'), Buffer.from(c.qualifyingData).toString('hex')),
    ])
  }
  timings.files = Date.now() - start
}, 300_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function oursAccepts(c: Case): boolean {
  try {
    verifyQuote(
      { attest: c.attest, signature: c.signature, pcrValues: c.pcrValues },
      { attestationKey: c.key, qualifyingData: c.qualifyingData },
    )
    return true
  } catch (err) {
    if (err instanceof DigicapError) return false
    throw err
  }
}

/** tpm2_checkquote on every case, from 4 shell scripts in parallel; returns the accepted ids. */
async function checkquoteAccepted(): Promise<Set<string>> {
  const lines = cases.map((c) => {
    const d = join(dir, c.id)
    const q = Buffer.from(c.qualifyingData).toString('hex')
    return `tpm2_checkquote -u ${d}/ak.pub -m ${d}/q.msg -s ${d}/q.sig -f ${d}/q.pcrs -g sha256 -q ${q} >/dev/null 2>&1 && echo ${c.id}`
  })
  const parts = [0, 1, 2, 3].map((k) => `${lines.filter((_, i) => i % 4 === k).join('\n')}\nexit 0`)
  const outputs = await Promise.all(
    parts.map((script) => run('sh', ['-c', script], { maxBuffer: 1 << 22 })),
  )
  return new Set(outputs.flatMap(({ stdout }) => stdout.split('\n')).filter((l) => l !== ''))
}

describe('1,000 fresh swtpm quotes against tpm2_checkquote', () => {
  it('both accept every genuine quote; we refuse every tampered one, a superset of what it refuses', async () => {
    const genuine = cases.filter((c) => c.genuine)
    const forged = cases.filter((c) => !c.genuine)
    expect(cases.length).toBe(2 * PER_AK)
    expect(genuine.length).toBe(700)
    let start = Date.now()
    const oursOk = new Set(cases.filter(oursAccepts).map((c) => c.id))
    timings.ours = Date.now() - start
    start = Date.now()
    const theirsOk = await checkquoteAccepted()
    timings.checkquote = Date.now() - start
    console.log(
      `checkquote-fresh: ${cases.length} cases; ms: ${JSON.stringify(timings)} (ours verifies all in ${timings.ours} ms)`,
    )

    expect(genuine.filter((c) => !oursOk.has(c.id)).map((c) => c.id)).toEqual([])
    expect(genuine.filter((c) => !theirsOk.has(c.id)).map((c) => c.id)).toEqual([])
    expect(forged.filter((c) => oursOk.has(c.id)).map((c) => c.id)).toEqual([])
    // what tpm2_checkquote lets through is only what it is known to miss
    const missed = new Set(forged.filter((c) => theirsOk.has(c.id)).map((c) => c.tamper))
    expect([...missed]).toEqual(['signature-appended'])
    // every tamper kind was exercised on both AKs
    for (const kind of TAMPERS)
      for (const ak of ['rsa', 'ecc'])
        expect(
          forged.some((c) => c.tamper === kind && c.id.startsWith(ak)),
          `${ak} ${kind}`,
        ).toBe(true)
  }, 600_000)
})
