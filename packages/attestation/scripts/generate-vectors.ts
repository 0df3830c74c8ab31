/**
 * Quote vectors from a REAL swtpm: `node scripts/generate-vectors.ts` (needs swtpm and
 * tpm2-tools) rewrites test/vectors/*.txt. Signatures and clocks differ on every run, so the
 * files are kept as generated; test/vectors.test.ts checks that each one gets its expected
 * outcome. Most refusals come from real TPM behaviour (another AK, another nonce, a PCR
 * extended after the quote, a reset or restart, a time attestation); the rest are byte edits
 * of genuine quotes.
 *
 * File format: `key: value` lines; `expect:` is `ok` or the error code the verifier must
 * throw; byte fields are lowercase hex.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseQuoteAttest, type QuoteClock, quoteBinding } from '../src/index.ts'
import { formatVector, type QuoteVector, VECTOR_DIR } from '../test/helpers/vector-file.ts'

const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 23]
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

import { type Quote, startQuoter, type TpmQuoter } from '../test/helpers/tpm-quotes.ts'

function binding(): Uint8Array {
  return quoteBinding({
    nonce: randomBytes(32),
    grantId: randomBytes(32),
    ephemeralPublicKey: randomBytes(32),
  })
}

function edit(bytes: Uint8Array, at: number, f: (b: number) => number): Uint8Array {
  const out = bytes.slice()
  out[at] = f(out[at] ?? 0) & 0xff
  return out
}

function clockOf(q: Quote): QuoteClock {
  return parseQuoteAttest(q.attest).clockInfo
}

/** Makes every case from a running TPM. */
export async function makeVectors(quoter: TpmQuoter): Promise<QuoteVector[]> {
  const out: QuoteVector[] = []
  const ekPublic = await quoter.createEk('rsa')
  const rsa = await quoter.createAk('rsa', '0x81010002')
  const ecc = await quoter.createAk('ecc', '0x81010003')
  const pss = await quoter.createAk('rsapss', '0x81010004')
  const add = (
    name: string,
    expect: string,
    comment: string,
    akPublic: Uint8Array,
    qualifyingData: Uint8Array,
    q: Quote,
    more: Partial<QuoteVector> = {},
  ) =>
    out.push({
      name,
      expect,
      comment,
      ekPublic,
      akPublic,
      qualifyingData,
      pcrs: PCRS,
      ...q,
      ...more,
    })

  // Genuine quotes, with the run PCR 23 extended as a run would.
  await quoter.extend(23, randomBytes(32))
  const qdRsa = binding()
  const rsaQuote = await quoter.quote('0x81010002', { qualifyingData: qdRsa })
  add('rsa-valid', 'ok', 'genuine RSASSA-SHA256 quote over sha256:0-7,23', rsa, qdRsa, rsaQuote)
  const qdPss = binding()
  add(
    'rsapss-valid',
    'ok',
    'genuine RSAPSS-SHA256 quote',
    pss,
    qdPss,
    await quoter.quote('0x81010004', { qualifyingData: qdPss, scheme: 'rsapss' }),
  )

  // ECDSA: a TPM does not normalise s, so find one genuine quote with a high s and one with a low s.
  const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')
  let high: [Uint8Array, Quote] | undefined
  let low: [Uint8Array, Quote] | undefined
  for (let i = 0; i < 16 && (high === undefined || low === undefined); i++) {
    const qd = binding()
    const q = await quoter.quote('0x81010003', { qualifyingData: qd })
    const sLen =
      (q.signature[4 + 2 + (q.signature[5] ?? 0)] ?? 0) * 256 +
      (q.signature[4 + 3 + (q.signature[5] ?? 0)] ?? 0)
    const s = BigInt(`0x${hex(q.signature.subarray(q.signature.length - sLen))}`)
    if (s > n / 2n) high ??= [qd, q]
    else low ??= [qd, q]
  }
  if (high === undefined || low === undefined)
    throw new Error('no high-s / low-s ECDSA quote in 16 tries')
  add('ecc-valid-low-s', 'ok', 'genuine ECDSA-P256-SHA256 quote, s <= n/2', ecc, low[0], low[1])
  add(
    'ecc-valid-high-s',
    'ok',
    'genuine ECDSA quote with s > n/2: TPMs do not normalise s, so it must be accepted',
    ecc,
    high[0],
    high[1],
  )
  const eccQuote = low[1]

  // Real TPM refusals.
  await quoter.createAk('ecc', '0x81010007')
  const qdSecond = binding()
  const secondAkQuote = await quoter.quote('0x81010007', { qualifyingData: qdSecond })
  add(
    'other-ak',
    'QUOTE_SIGNER',
    'a genuine quote by a second ECC AK under the same EK, checked against the registered ECC AK',
    ecc,
    qdSecond,
    secondAkQuote,
  )
  const otherEk = await quoter.createEk('ecc', '0x81010005')
  const underOtherEk = await quoter.createAk('ecc', '0x81010006', '0x81010005')
  const qdOtherEk = binding()
  const otherEkQuote = await quoter.quote('0x81010006', { qualifyingData: qdOtherEk })
  add(
    'ak-under-other-ek',
    'QUOTE_SIGNER',
    'a genuine quote by an AK made under another EK of the TPM, registered with the first EK: the qualified name differs',
    underOtherEk,
    qdOtherEk,
    otherEkQuote,
  )
  add(
    'ak-under-other-ek-registered',
    'ok',
    'the same AK, registered with the EK it was made under',
    underOtherEk,
    qdOtherEk,
    otherEkQuote,
    { ekPublic: otherEk },
  )
  const qdOther = binding()
  add(
    'other-nonce',
    'QUOTE_NONCE',
    'a genuine quote bound to another nonce/grant/key than the one expected',
    rsa,
    binding(),
    await quoter.quote('0x81010002', { qualifyingData: qdOther }),
  )
  const qdExt = binding()
  const beforeExtend = await quoter.quote('0x81010003', { qualifyingData: qdExt })
  await quoter.extend(23, randomBytes(32))
  const after = await quoter.readPcrs(PCRS)
  add(
    'pcr-extended-after',
    'QUOTE_PCR_DIGEST',
    'PCR 23 extended after the quote; the reported values are the current ones',
    ecc,
    qdExt,
    { ...beforeExtend, pcrValues: after },
  )
  const qdSha1 = binding()
  const sha1 = await quoter.quote('0x81010003', {
    qualifyingData: qdSha1,
    pcrList: 'sha1:0,1,2,3,4,5,6,7,23',
  })
  add(
    'pcr-bank-sha1',
    'QUOTE_PCR_SELECTION',
    'genuine quote over the sha1 PCR bank (tpm2_checkquote accepts it)',
    ecc,
    qdSha1,
    sha1,
  )
  const qdNo23 = binding()
  const no23 = await quoter.quote('0x81010003', {
    qualifyingData: qdNo23,
    pcrList: 'sha256:0,1,2,3,4,5,6,7',
  })
  add(
    'pcr-23-missing',
    'QUOTE_PCR_SELECTION',
    'genuine quote that leaves out the run PCR 23',
    ecc,
    qdNo23,
    no23,
  )
  const qdBoth = binding()
  const both = await quoter.quote('0x81010003', {
    qualifyingData: qdBoth,
    pcrList: 'sha256:0,1,2,3,4,5,6,7,23+sha1:0',
  })
  add(
    'pcr-two-banks',
    'QUOTE_PCR_SELECTION',
    'genuine quote over sha256 and an extra sha1 bank',
    ecc,
    qdBoth,
    both,
  )
  const qdTime = binding()
  const time = await quoter.getTime('0x81010003', qdTime)
  add(
    'time-attestation',
    'QUOTE_TYPE',
    'a genuine TPM2_GetTime attestation signed by the AK: not a quote (tpm2_checkquote accepts the type)',
    ecc,
    qdTime,
    { ...time, pcrValues: eccQuote.pcrValues },
  )

  // Clock and boot counters: genuine sequences.
  const qdSeq = binding()
  const first = await quoter.quote('0x81010003', { qualifyingData: qdSeq })
  const second = await quoter.quote('0x81010003', { qualifyingData: qdSeq })
  add(
    'sequence-valid',
    'ok',
    'a later quote after the previous one, no reboot',
    ecc,
    qdSeq,
    second,
    { previous: clockOf(first) },
  )
  add(
    'clock-rollback',
    'QUOTE_CLOCK',
    'the earlier quote offered after a later one (replay)',
    ecc,
    qdSeq,
    first,
    { previous: clockOf(second) },
  )
  await quoter.restart()
  const qdRestart = binding()
  const restarted = await quoter.quote('0x81010003', { qualifyingData: qdRestart })
  add(
    'restart-between',
    'QUOTE_RESTART',
    'TPM2_Shutdown(STATE) + Startup(CLEAR) between the two quotes: restartCount grew',
    ecc,
    qdRestart,
    restarted,
    { previous: clockOf(second) },
  )
  await quoter.powerCycle()
  const qdReset = binding()
  const reset = await quoter.quote('0x81010003', { qualifyingData: qdReset })
  add(
    'power-loss-between',
    'QUOTE_REBOOT',
    'swtpm killed without shutdown and started again: resetCount grew',
    ecc,
    qdReset,
    reset,
    { previous: clockOf(restarted) },
  )
  add(
    'reboot-rollback',
    'QUOTE_CLOCK',
    'a quote from before a reset offered after one from after it',
    ecc,
    qdRestart,
    restarted,
    { previous: clockOf(reset) },
  )

  // Byte edits of genuine quotes.
  const base = { ekPublic, akPublic: rsa, qualifyingData: qdRsa, ...rsaQuote }
  const edited = (name: string, expect: string, comment: string, change: Partial<QuoteVector>) =>
    out.push({ name, expect, comment, pcrs: PCRS, ...base, ...change })
  edited('attest-truncated', 'TPM_FORMAT', 'TPMS_ATTEST cut one byte short', {
    attest: rsaQuote.attest.subarray(0, -1),
  })
  edited('attest-trailing', 'TPM_FORMAT', 'one byte appended to TPMS_ATTEST', {
    attest: Uint8Array.of(...rsaQuote.attest, 0),
  })
  edited('attest-empty', 'TPM_FORMAT', 'empty TPMS_ATTEST', { attest: new Uint8Array(0) })
  edited('attest-wrong-magic', 'QUOTE_MAGIC', 'magic ff544347 changed to ff544348', {
    attest: edit(rsaQuote.attest, 3, (b) => b + 1),
  })
  edited('attest-wrong-type', 'QUOTE_TYPE', 'type 8018 (quote) changed to 8017 (certify)', {
    attest: edit(rsaQuote.attest, 5, () => 0x17),
  })
  edited(
    'attest-extra-data-edited',
    'QUOTE_SIGNATURE',
    'one byte of extraData flipped: the signature no longer matches',
    { attest: edit(rsaQuote.attest, 4 + 2 + 2 + 34 + 2, (b) => b ^ 1) },
  )
  edited(
    'signature-trailing',
    'TPM_FORMAT',
    'bytes appended to TPMT_SIGNATURE (tpm2_checkquote ignores them)',
    { signature: Uint8Array.of(...rsaQuote.signature, 0, 0) },
  )
  edited('signature-truncated', 'TPM_FORMAT', 'TPMT_SIGNATURE cut short', {
    signature: rsaQuote.signature.subarray(0, 100),
  })
  edited('signature-flipped', 'QUOTE_SIGNATURE', 'last signature byte flipped', {
    signature: edit(rsaQuote.signature, rsaQuote.signature.length - 1, (b) => b ^ 1),
  })
  edited(
    'signature-hash-sha1',
    'QUOTE_SIGNATURE_SCHEME',
    'signature hash changed to sha1: no downgrade',
    { signature: edit(rsaQuote.signature, 3, () => 0x04) },
  )
  edited(
    'signature-hash-sha384',
    'QUOTE_SIGNATURE_SCHEME',
    'signature hash changed to sha384: sha256 only',
    { signature: edit(rsaQuote.signature, 3, () => 0x0c) },
  )
  edited('signature-unknown-alg', 'TPM_FORMAT', 'sigAlg changed to HMAC (0005)', {
    signature: edit(rsaQuote.signature, 1, () => 0x05),
  })
  edited(
    'signature-scheme-pss-for-rsassa-ak',
    'QUOTE_SIGNATURE_SCHEME',
    'sigAlg RSASSA changed to RSAPSS: the AK fixes RSASSA',
    { signature: edit(rsaQuote.signature, 1, () => 0x16) },
  )
  edited('pcr-value-edited', 'QUOTE_PCR_DIGEST', 'one reported PCR 0 byte flipped', {
    pcrValues: new Map(
      [...rsaQuote.pcrValues].map(([k, v]) => [k, k === 0 ? edit(v, 0, (b) => b ^ 1) : v]),
    ),
  })
  edited('pcr-value-missing', 'QUOTE_PCR_DIGEST', 'PCR 23 left out of the reported values', {
    pcrValues: new Map([...rsaQuote.pcrValues].filter(([k]) => k !== 23)),
  })
  edited('ek-public-trailing', 'TPM_FORMAT', 'a byte appended to the registered EK public', {
    ekPublic: Uint8Array.of(...ekPublic, 0),
  })
  edited('ak-public-truncated', 'TPM_FORMAT', 'registered AK public cut short', {
    akPublic: rsa.subarray(0, -1),
  })
  edited(
    'ak-public-not-restricted',
    'QUOTE_AK',
    'restricted bit cleared in the registered AK public (its name changes too)',
    { akPublic: edit(rsa, 2 + 2 + 2 + 1, (b) => b & ~0x01) },
  )
  return out
}

async function main(): Promise<void> {
  const quoter = await startQuoter()
  try {
    const vectors = await makeVectors(quoter)
    await mkdir(VECTOR_DIR, { recursive: true })
    for (const f of await readdir(VECTOR_DIR)) if (f.endsWith('.txt')) await rm(join(VECTOR_DIR, f))
    for (const v of vectors) await writeFile(join(VECTOR_DIR, `${v.name}.txt`), formatVector(v))
    console.log(`wrote ${vectors.length} vectors to ${VECTOR_DIR}`)
  } finally {
    await quoter.stop()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
