/**
 * Unwrap latency of the tpm2 sealer on swtpm (direct TPM2_RSA_Decrypt and through
 * tpm2-tools), against the bare `tpm2_rsadecrypt` CLI call (the baseline: same TPM, same key,
 * same ciphertext, spawned directly with execFile), the raw direct command with one TCP
 * connection per command (what the sealer does) and over one held connection (what a
 * connection per command costs), and the software sealer (no TPM), all measured in this run.
 *
 * Run: `pnpm --filter @digicap/keyguard bench` (or `node bench/unwrap.ts [iterations]`).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { transportFor } from '@digicap/tpm'
import { softwareSealer } from '../src/sealers/software-sealer.ts'
import { tpm2Sealer } from '../src/sealers/tpm2-sealer.ts'
import { startSwtpm } from '../src/testing.ts'
import { rsaDecryptDirect } from '../src/tpm2/direct.ts'
import { decodeRsaDecryptResponse, encodeRsaDecrypt } from '../src/tpm2/rsa-decrypt.ts'

const iterations = Number(process.argv[2] ?? 200)
const warmup = 10

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function measure(run: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < warmup; i++) await run()
  const times: number[] = []
  for (let i = 0; i < iterations; i++) {
    const t = performance.now()
    await run()
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 50), p99: percentile(times, 99) }
}

function bareRsaDecrypt(tcti: string, ciphertext: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'tpm2_rsadecrypt',
      ['-c', '0x81000010', '-s', 'oaep'],
      { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, encoding: 'buffer' },
      (err) => (err ? reject(err) : resolve()),
    )
    child.stdin?.end(ciphertext)
  })
}

/** Runs `body` with a sender over ONE connection to swtpm (blocks every other client meanwhile). */
async function heldConnection<T>(
  port: number,
  body: (send: (command: Uint8Array) => Promise<Uint8Array>) => Promise<T>,
): Promise<T> {
  const socket: Socket = connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  let pending: { chunks: Buffer[]; resolve: (b: Uint8Array) => void } | undefined
  socket.on('data', (chunk: Buffer) => {
    if (pending === undefined) return
    pending.chunks.push(chunk)
    const all = Buffer.concat(pending.chunks)
    if (all.length >= 6 && all.length >= all.readUInt32BE(2)) {
      const done = pending
      pending = undefined
      done.resolve(new Uint8Array(all))
    }
  })
  try {
    return await body(
      (command) =>
        new Promise((resolve) => {
          pending = { chunks: [], resolve }
          socket.write(command)
        }),
    )
  } finally {
    socket.destroy()
  }
}

const tpm = await startSwtpm()
const dir = await mkdtemp(join(tmpdir(), 'kg-bench-'))
try {
  const sealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true })
  const dataKey = randomBytes(32)
  const wrapped = await sealer.wrap(dataKey)
  if (!Buffer.from(await sealer.unwrap(wrapped)).equals(dataKey))
    throw new Error('round trip failed')

  const software = softwareSealer({
    keyFile: join(dir, 'k.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: { info: () => undefined, warn: () => undefined },
  })
  const softWrapped = await software.wrap(dataKey)

  const viaTools = tpm2Sealer({
    tcti: tpm.tcti,
    unwrapVia: 'tools',
    allowUnencryptedTransport: true,
  })
  const transport = transportFor(tpm.tcti, 10_000)
  if (transport === undefined) throw new Error('no direct transport')

  const bare = await measure(() => bareRsaDecrypt(tpm.tcti, wrapped.ciphertext))
  const ours = await measure(() => sealer.unwrap(wrapped))
  const tools = await measure(() => viaTools.unwrap(wrapped))
  const raw = await measure(() => rsaDecryptDirect(transport, 0x81000010, wrapped.ciphertext))
  const held = await heldConnection(tpm.port, async (send) =>
    measure(async () =>
      decodeRsaDecryptResponse(await send(encodeRsaDecrypt(0x81000010, wrapped.ciphertext))),
    ),
  )
  const soft = await measure(() => software.unwrap(softWrapped))
  const wrap = await measure(() => sealer.wrap(dataKey))

  const row = (name: string, r: { p50: number; p99: number }) =>
    `${name.padEnd(44)} p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms   ×${(r.p50 / bare.p50).toFixed(2)} of baseline p50`
  console.log(`unwrap latency, ${iterations} iterations after ${warmup} warm-up, swtpm on loopback`)
  console.log(row('baseline: bare tpm2_rsadecrypt (execFile)', bare))
  console.log(row('tpm2Sealer.unwrap, direct (default)', ours))
  console.log(row("tpm2Sealer.unwrap, unwrapVia 'tools' (execa)", tools))
  console.log(row('raw TPM2_RSA_Decrypt, connection per command', raw))
  console.log(row('raw TPM2_RSA_Decrypt, one held connection', held))
  console.log(row('softwareSealer.unwrap (no TPM)', soft))
  console.log(row('tpm2Sealer.wrap (software RSA-OAEP)', wrap))
} finally {
  await tpm.stop()
  await rm(dir, { recursive: true, force: true })
}
