/**
 * One measured operation in a fresh process, so its peak RSS is its own. Plain JavaScript
 * against the built `dist/` on purpose: loading TypeScript sources through Node's type
 * stripping costs ~50 MiB of RSS that a library user never pays.
 *
 * Usage: node bench/child.mjs <op> <json-args>; prints one JSON line { ms, maxRssKiB, ... }.
 * Ops: baseline | cipher-seal | cipher-open | sha256 | hmac-sha256 (in memory) |
 *      commit | seal | seal-full | seal-onepass | open | open-nocommit (file helpers,
 *      default threads),
 *      commit-1t | seal-1t | open-1t (file helpers on the calling thread alone),
 *      passthrough-node | passthrough-web (identity streams, no Digicap code),
 *      seal-node | open-node (Node streams), seal-web | open-web (Web streams)
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, readFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  addressFromPrivateKey,
  commitAndSealFile,
  commitPlaintextFile,
  createCapsuleHeader,
  openFile,
  openNodeStream,
  openStream,
  sealFile,
  sealNodeStream,
  sealStream,
  signCapsuleHeader,
} from '../dist/index.js'

const [op, argsJson] = process.argv.slice(2)
const args = JSON.parse(argsJson ?? '{}')
const key = (label) => new Uint8Array(createHash('sha256').update(label).digest())
const OWNER_KEY = key('bench owner key')
const DATA_KEY = key('bench data key')
const CAPSULE_ID = key('bench capsule id')

const FIELDS = {
  owner: addressFromPrivateKey(OWNER_KEY),
  capsuleId: CAPSULE_ID,
  createdAt: 1_790_000_000,
  policy: {
    chainId: 31337,
    registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
  },
  keyguard: {
    peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
    keyId: 'k',
    wrapScheme: 'tpm2-rsa-oaep-sha256',
  },
  runtime: { kind: 'data' },
  dataKey: DATA_KEY,
}
function header(commitment, chunkSize) {
  return createCapsuleHeader({ ...FIELDS, commitment, chunkSize })
}

/** `threads: 1` for the `-1t` ops (the calling thread alone), else the library default. */
const threads = op.endsWith('-1t') ? { threads: 1 } : {}

async function commit() {
  return commitPlaintextFile(args.input, DATA_KEY, CAPSULE_ID, {
    chunkSize: args.chunkSize,
    ...threads,
  })
}

// The encrypt-pass rows take the commitment measured earlier (its value is not checked by
// sealing, so the chunk-size sweep reuses it).
const given = () => ({
  plaintextSize: args.size,
  plaintextCommitment: Buffer.from(args.commitment, 'hex'),
  chunkSize: args.chunkSize,
})
function sealParams(commitment) {
  const h = header(commitment, args.chunkSize)
  return { header: h, signature: signCapsuleHeader(h, OWNER_KEY), dataKey: DATA_KEY }
}

const result = {}
let t0 = performance.now()
let c0 = process.cpuUsage()
if (op === 'baseline') {
  // Node itself plus the library loaded: the floor under every other row.
} else if (op === 'cipher-seal' || op === 'cipher-open') {
  // The STREAM cipher path alone, in memory (no file I/O), over args.size bytes: the
  // like-for-like comparison with `openssl speed`. Uses the package's internal chunk functions.
  const { encryptChunk, decryptChunk } = await import('../src/payload.ts')
  const key = new Uint8Array(32).fill(7)
  const aad = new Uint8Array(32).fill(9)
  const plain = new Uint8Array(args.chunkSize).fill(1)
  const sealed = Buffer.concat(encryptChunk(key, aad, 0, false, [plain]))
  const release = (bufs) => {
    for (const b of bufs)
      if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) b.buffer.transfer(0)
  }
  t0 = performance.now()
  c0 = process.cpuUsage()
  const n = Math.ceil(args.size / args.chunkSize)
  for (let i = 0; i < n; i++) {
    if (op === 'cipher-seal') release(encryptChunk(key, aad, i, false, [plain]))
    else release(decryptChunk(key, aad, 0, false, [sealed]) ?? [])
  }
} else if (op === 'sha256' || op === 'hmac-sha256') {
  // The hash alone, in memory over a reused 1 MiB buffer: the floor under any seal that
  // commits to the plaintext with SHA-256 (SPEC.md §4.3).
  const { createHmac } = await import('node:crypto')
  const buf = new Uint8Array(1024 * 1024).fill(1)
  t0 = performance.now()
  c0 = process.cpuUsage()
  const h = op === 'sha256' ? createHash('sha256') : createHmac('sha256', new Uint8Array(32))
  for (let left = args.size; left > 0; left -= buf.length) h.update(buf)
  h.digest()
} else if (op === 'passthrough-node' || op === 'passthrough-web') {
  // No Digicap code: the same source and sink through an identity stream. Its peak RSS is
  // what Node's garbage collector leaves behind for this source (the stream rows' floor).
  const { PassThrough } = await import('node:stream')
  const source = createReadStream(args.input, { highWaterMark: args.chunkSize })
  if (op === 'passthrough-node')
    await pipeline(source, new PassThrough(), createWriteStream(args.output))
  else
    await Readable.toWeb(source)
      .pipeThrough(new TransformStream())
      .pipeTo(Writable.toWeb(createWriteStream(args.output)))
} else if (op === 'commit' || op === 'commit-1t') {
  const c = await commit()
  result.commitment = Buffer.from(c.plaintextCommitment).toString('hex')
} else if (op === 'seal' || op === 'seal-1t') {
  const params = sealParams(given())
  t0 = performance.now()
  c0 = process.cpuUsage()
  await sealFile({ ...params, input: args.input, output: args.output, ...threads })
} else if (op === 'seal-full') {
  const params = sealParams(await commit())
  await sealFile({ ...params, input: args.input, output: args.output })
} else if (op === 'seal-onepass') {
  // The complete seal in one read: commitment, header and signature made along the way.
  await commitAndSealFile({
    ...FIELDS,
    chunkSize: args.chunkSize,
    sign: (h) => signCapsuleHeader(h, OWNER_KEY),
    input: args.input,
    output: args.output,
  })
} else if (op === 'seal-node') {
  const params = sealParams(given())
  t0 = performance.now()
  c0 = process.cpuUsage()
  await pipeline(
    createReadStream(args.input, { highWaterMark: args.chunkSize }),
    sealNodeStream(params),
    createWriteStream(args.output),
  )
} else if (op === 'open-node') {
  const open = openNodeStream({ dataKey: DATA_KEY })
  await pipeline(
    createReadStream(args.input, { highWaterMark: args.chunkSize }),
    open,
    createWriteStream(args.output),
  )
} else if (op === 'seal-web') {
  const params = sealParams(given())
  t0 = performance.now()
  c0 = process.cpuUsage()
  const source = Readable.toWeb(createReadStream(args.input, { highWaterMark: args.chunkSize }))
  await source
    .pipeThrough(sealStream(params))
    .pipeTo(Writable.toWeb(createWriteStream(args.output)))
} else if (op === 'open-web') {
  const open = openStream({ dataKey: DATA_KEY })
  await Readable.toWeb(createReadStream(args.input, { highWaterMark: args.chunkSize }))
    .pipeThrough(open)
    .pipeTo(Writable.toWeb(createWriteStream(args.output)))
} else if (op === 'open' || op === 'open-1t' || op === 'open-nocommit') {
  await openFile({
    input: args.input,
    output: args.output,
    dataKey: DATA_KEY,
    checkCommitment: op !== 'open-nocommit',
    ...threads,
  })
} else {
  throw new Error(`unknown op ${op}`)
}
result.ms = performance.now() - t0
const cpu = process.cpuUsage(c0)
result.cpuMs = (cpu.user + cpu.system) / 1000
// This process's own peak: ru_maxrss (process.resourceUsage) starts at the parent's RSS at
// fork time on Linux, so it would report the bench parent's size as a floor.
const status = (() => {
  try {
    return readFileSync('/proc/self/status', 'utf8')
  } catch {
    return ''
  }
})()
result.maxRssKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? process.resourceUsage().maxRSS)
process.stdout.write(`${JSON.stringify(result)}\n`)
