/**
 * The price of the endpoint's digest checks: a blob pulled through the registry endpoint
 * (hashed relay, last chunk held back; and a Range request, spooled and checked first) against
 * a plain node:http server piping the same file unchecked, in the same run, over loopback.
 * Prints the best of three alternated rounds of each and the ratios to the plain server.
 *
 *   node bench/registry-relay.ts [MiB=64]
 */
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLayout, layoutBlobSource, startRegistry } from '../src/index.ts'

const mib = Number(process.argv[2] ?? 64)
const dir = await mkdtemp(join(tmpdir(), 'oci-registry-bench-'))
const chunk = randomBytes(1024 * 1024)
const layout = await createLayout(join(dir, 'layout'))
const { digest, size } = await layout.writeBlob(
  (function* () {
    for (let i = 0; i < mib; i++) yield chunk
  })(),
)
const registry = await startRegistry({
  repositories: new Map([['bench/blob', layoutBlobSource(layout)]]),
  spoolDir: dir,
})
const plain = createServer((_req, res) => {
  res.writeHead(200, { 'Content-Length': size })
  createReadStream(layout.blobPath(digest)).pipe(res)
})
await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve))
const plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/`
const blobUrl = `${registry.url}/v2/bench/blob/blobs/${digest}`

async function pull(url: string, headers: Record<string, string> = {}): Promise<number> {
  const started = performance.now()
  const response = await fetch(url, { headers })
  let n = 0
  for await (const part of response.body ?? []) n += (part as Uint8Array).length
  if (n !== size && !headers.Range) throw new Error(`short body: ${n} of ${size}`)
  return performance.now() - started
}

const best = { plain: Infinity, relay: Infinity, range: Infinity }
try {
  for (let round = 0; round < 3; round++) {
    best.plain = Math.min(best.plain, await pull(plainUrl))
    best.relay = Math.min(best.relay, await pull(blobUrl))
    best.range = Math.min(best.range, await pull(blobUrl, { Range: 'bytes=0-' }))
  }
  const ms = (t: number) => `${t.toFixed(0)} ms`
  console.log(
    `blob ${mib} MiB over loopback, best of 3 (load ${(await import('node:os')).loadavg()[0]?.toFixed(1)})`,
  )
  console.log(`plain http (unchecked)   ${ms(best.plain)}`)
  console.log(
    `endpoint, hashed relay   ${ms(best.relay)}  ratio ${(best.relay / best.plain).toFixed(2)}`,
  )
  console.log(
    `endpoint, Range (spool)  ${ms(best.range)}  ratio ${(best.range / best.plain).toFixed(2)}`,
  )
} finally {
  await registry.close()
  plain.close()
  await rm(dir, { recursive: true, force: true })
}
