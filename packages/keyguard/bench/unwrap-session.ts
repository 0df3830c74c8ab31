/**
 * Unwrap latency with the encrypted session (salted HMAC session, response encrypted with
 * AES-128-CFB: StartAuthSession + RSA_Decrypt on one channel; what `tpm2Sealer.unwrap` does
 * now) against the previous direct path (one session-less TPM2_RSA_Decrypt with a password
 * authorization, the data key in clear on the wire): same swtpm, same key, same ciphertext,
 * measured in this run, interleaved so load drifts hit both alike. A third row: a PCR-bound
 * key (policy session: LoadExternal + VerifySignature + StartAuthSession + PolicyPCR +
 * PolicyAuthorize + RSA_Decrypt per unwrap), made as before ADR 0094; a fourth: the
 * rollback-protected PCR-bound key made since (the same plus PolicyNV on the epoch counter).
 *
 * Run: `node bench/unwrap-session.ts [iterations]`.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { p256VerifyKeyPublic, policyAuthorizeDigest, transportFor } from '@digicap/tpm'
import { execa } from 'execa'
import { generateMnemonic } from '../src/recovery/recovery.ts'
import { keyPolicyAuthorize } from '../src/sealers/key-policy-view.ts'
import { derivePolicyAuthKey } from '../src/sealers/pcr-policy.ts'
import { tpm2Sealer } from '../src/sealers/tpm2-sealer.ts'
import { startSwtpm } from '../src/testing.ts'
import { rsaDecryptDirect } from '../src/tpm2/direct.ts'

const iterations = Number(process.argv[2] ?? 200)
const warmup = 10

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const tpm = await startSwtpm()
const dir = await mkdtemp(join(tmpdir(), 'kg-bench-session-'))
try {
  const quiet = { info: () => undefined, warn: () => undefined }
  const sealer = tpm2Sealer({
    tcti: tpm.tcti,
    createIfMissing: true,
    keyRecordFile: join(dir, 'tpm2-key.json'),
    logger: quiet,
  })
  const dataKey = randomBytes(32)
  const wrapped = await sealer.wrap(dataKey)
  if (!Buffer.from(await sealer.unwrap(wrapped)).equals(dataKey))
    throw new Error('round trip failed')
  const transport = transportFor(tpm.tcti, 10_000)
  if (transport === undefined) throw new Error('no direct transport')

  const words = generateMnemonic()
  const authKey = await derivePolicyAuthKey(words)
  const policyRecord = join(dir, 'tpm2-key-pcr.json')
  const bound = tpm2Sealer({
    tcti: tpm.tcti,
    handle: 0x81000011,
    createIfMissing: true,
    keyRecordFile: policyRecord,
    pcrPolicy: { authKey: authKey.publicKey },
    logger: quiet,
  })
  const boundWrapped = await bound.wrap(dataKey)
  await keyPolicyAuthorize(tpm.tcti, policyRecord, words)
  if (!Buffer.from(await bound.unwrap(boundWrapped)).equals(dataKey))
    throw new Error('policy round trip failed')

  // A PCR-bound key as made before ADR 0094 (no epoch counter).
  const env = { env: { TPM2TOOLS_TCTI: tpm.tcti } }
  const oldPolicy = join(dir, 'old-policy')
  await writeFile(oldPolicy, policyAuthorizeDigest(p256VerifyKeyPublic(authKey.publicKey).name))
  await execa(
    'tpm2_createprimary',
    [
      ...['-C', 'o', '-g', 'sha256', '-G', 'rsa2048:oaep-sha256:null', '-L', oldPolicy],
      ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|noda|decrypt'],
      ...['-u', '-', '-c', join(dir, 'old.ctx'), '-Q'],
    ],
    { ...env, input: randomBytes(32) },
  )
  await execa('tpm2_evictcontrol', ['-C', 'o', '-c', join(dir, 'old.ctx'), '0x81000012'], env)
  await execa('tpm2_flushcontext', ['-t'], env)
  const legacyRecord = join(dir, 'tpm2-key-legacy.json')
  const legacy = tpm2Sealer({
    tcti: tpm.tcti,
    handle: 0x81000012,
    createIfMissing: true,
    keyRecordFile: legacyRecord,
    pcrPolicy: { authKey: authKey.publicKey },
    logger: quiet,
  })
  const legacyWrapped = await legacy.wrap(dataKey)
  await keyPolicyAuthorize(tpm.tcti, legacyRecord, words)
  if (!Buffer.from(await legacy.unwrap(legacyWrapped)).equals(dataKey))
    throw new Error('legacy policy round trip failed')

  const runs = {
    session: () => sealer.unwrap(wrapped),
    plain: () => rsaDecryptDirect(transport, 0x81000010, wrapped.ciphertext),
    legacy: () => legacy.unwrap(legacyWrapped),
    policy: () => bound.unwrap(boundWrapped),
  }
  const times: Record<keyof typeof runs, number[]> = {
    session: [],
    plain: [],
    legacy: [],
    policy: [],
  }
  for (let i = 0; i < warmup; i++) for (const run of Object.values(runs)) await run()
  for (let i = 0; i < iterations; i++) {
    for (const name of Object.keys(runs) as (keyof typeof runs)[]) {
      const t = performance.now()
      await runs[name]()
      times[name].push(performance.now() - t)
    }
  }
  const stats = (t: number[]) => {
    const s = [...t].sort((a, b) => a - b)
    return { p50: percentile(s, 50), p99: percentile(s, 99) }
  }
  const plain = stats(times.plain)
  const session = stats(times.session)
  const row = (name: string, r: { p50: number; p99: number }) =>
    `${name.padEnd(58)} p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms   ×${(r.p50 / plain.p50).toFixed(2)} of baseline p50`
  console.log(
    `unwrap latency, ${iterations} iterations each (interleaved) after ${warmup} warm-up, swtpm on loopback`,
  )
  console.log(row('baseline: session-less TPM2_RSA_Decrypt (previous path)', plain))
  console.log(row('tpm2Sealer.unwrap: salted session, response encrypted', session))
  console.log(row('PCR-bound key made before ADR 0094 (no epoch counter)', stats(times.legacy)))
  console.log(row('PCR-bound key, rollback-protected (+ PolicyNV, ADR 0094)', stats(times.policy)))
} finally {
  await tpm.stop()
  await rm(dir, { recursive: true, force: true })
}
