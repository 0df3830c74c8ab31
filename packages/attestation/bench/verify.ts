/**
 * Quotes verified per second on one core by `verifyQuote` (AK imported once per node, as a
 * verifier caches it; and re-imported on every quote), for an RSA-2048 and an ECC P-256 AK,
 * against the baseline of `tpm2_checkquote` run once per quote (a process per quote, as a
 * shell-based verifier does), measured in the same run on the same genuine swtpm quotes. The
 * floor is node:crypto's `verify` alone on the same signature (what no verifier on this
 * machine can beat without another crypto library).
 *
 * The three in-process measures run interleaved in `rounds` rounds and each keeps its best
 * round, so a load spike on the shared machine does not land on one of them only; the load
 * average is printed with the figures.
 *
 *   node bench/verify.ts [iterations] [baselineIterations] [rounds]
 */
import { execFileSync } from 'node:child_process'
import { constants, verify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { importAttestationKey, parseSignature, TPM_ALG, verifyQuote } from '../src/index.ts'
import { serializedPcrFile } from '../test/helpers/checkquote.ts'
import { parseVector, VECTOR_DIR } from '../test/helpers/vector-file.ts'

const iterations = Number(process.argv[2] ?? 5000)
const baselineIterations = Number(process.argv[3] ?? 40)
const rounds = Number(process.argv[4] ?? 5)
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} (1, 5, 15 min)`,
)

function perSecond(n: number, f: () => void): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) f()
  return n / (Number(process.hrtime.bigint() - start) / 1e9)
}

for (const name of ['rsa-valid', 'ecc-valid-low-s']) {
  const v = parseVector(readFileSync(join(VECTOR_DIR, `${name}.txt`), 'utf8'))
  const evidence = { attest: v.attest, signature: v.signature, pcrValues: v.pcrValues }
  const record = { ekPublic: v.ekPublic, akPublic: v.akPublic }
  const cached = { attestationKey: importAttestationKey(record), qualifyingData: v.qualifyingData }
  const raw = { attestationKey: record, qualifyingData: v.qualifyingData }
  perSecond(Math.min(500, iterations), () => verifyQuote(evidence, cached)) // warm-up

  const sig = parseSignature(v.signature)
  const key = cached.attestationKey.key
  const floorOnce = () =>
    sig.sigAlg === TPM_ALG.ECDSA
      ? perSecond(iterations, () => {
          verify(
            'sha256',
            v.attest,
            { key, dsaEncoding: 'ieee-p1363' },
            Buffer.concat([sig.r, sig.s]),
          )
        })
      : perSecond(iterations, () => {
          verify('sha256', v.attest, { key, padding: constants.RSA_PKCS1_PADDING }, sig.sig)
        })
  let [floor, ours, oursRaw] = [0, 0, 0]
  for (let r = 0; r < rounds; r++) {
    floor = Math.max(floor, floorOnce())
    ours = Math.max(
      ours,
      perSecond(iterations, () => verifyQuote(evidence, cached)),
    )
    oursRaw = Math.max(
      oursRaw,
      perSecond(Math.max(1, Math.floor(iterations / 2)), () => verifyQuote(evidence, raw)),
    )
  }

  const dir = mkdtempSync(join(tmpdir(), 'digicap-bench-'))
  writeFileSync(join(dir, 'ak.pub'), v.akPublic)
  writeFileSync(join(dir, 'q.msg'), v.attest)
  writeFileSync(join(dir, 'q.sig'), v.signature)
  writeFileSync(join(dir, 'q.pcrs'), serializedPcrFile(0x000b, v.pcrValues))
  const args = ['-u', join(dir, 'ak.pub'), '-m', join(dir, 'q.msg'), '-s', join(dir, 'q.sig')]
  args.push(
    '-f',
    join(dir, 'q.pcrs'),
    '-g',
    'sha256',
    '-q',
    Buffer.from(v.qualifyingData).toString('hex'),
  )
  const baseline = perSecond(baselineIterations, () => {
    execFileSync('tpm2_checkquote', args, { stdio: 'ignore' })
  })
  rmSync(dir, { recursive: true, force: true })

  console.log(
    `${name}: verifyQuote ${ours.toFixed(0)}/s (AK cached), ${oursRaw.toFixed(0)}/s (AK imported per quote); ` +
      `crypto.verify alone ${floor.toFixed(0)}/s (${((100 * ours) / floor).toFixed(0)}% of it); ` +
      `tpm2_checkquote per process ${baseline.toFixed(1)}/s; ratio ${(ours / baseline).toFixed(0)}x`,
  )
}
