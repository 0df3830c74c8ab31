/**
 * Seal/open throughput and peak memory against openssl, age and cat, measured in one run.
 *
 *   pnpm bench                 # 1 GiB
 *   pnpm bench --size 64M      # quick run
 *   pnpm bench --dir /tmp      # files on disk instead of /dev/shm
 *
 * Every Digicap operation runs in a fresh child process (bench/child.mjs, against dist/) that reports its own
 * time and peak RSS. Crypto paths write to /dev/null; file-to-file runs are reported as a ratio
 * to a plain `cat` copy of the same file. The plaintext file is generated in a temp dir and
 * deleted afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CHUNK_SIZE, MAX_FILE_THREADS, PARALLEL_FILE_MIN_BYTES } from '../src/index.ts'

function parseSize(s: string): number {
  const m = /^([0-9]+)([KMG]?)i?B?$/i.exec(s)
  if (!m) throw new Error(`bad --size ${s}`)
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase()] as number
  return Number(m[1]) * unit
}

const argv = process.argv.slice(2)
const sizeArg = argv.indexOf('--size')
const size = sizeArg >= 0 ? parseSize(argv[sizeArg + 1] ?? '') : 1024 ** 3
const noSweep = argv.includes('--no-sweep')
const here = new URL('.', import.meta.url).pathname
// Files live in RAM (/dev/shm) when it exists, for every tool alike: the rows measure crypto
// and memory copies, not this machine's slow, noisy disk. `--dir <path>` overrides.
const dirArg = argv.indexOf('--dir')
const filesDir =
  dirArg >= 0 ? (argv[dirArg + 1] as string) : existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
const dir = mkdtempSync(join(filesDir, 'digicap-bench-'))
const plain = join(dir, 'plain.bin')
const MB = 1e6
const mib = (kib: number) => (kib / 1024).toFixed(1)

interface Row {
  name: string
  ms: number
  cpuMs?: number
  rssKiB?: number
  note?: string
}
const rows: Row[] = []

function child(
  op: string,
  args: Record<string, unknown>,
): Record<string, unknown> & { ms: number; cpuMs: number; maxRssKiB: number } {
  const r = spawnSync(process.execPath, [join(here, 'child.mjs'), op, JSON.stringify(args)], {
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`child ${op} failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() as string)
}

/** Runs a command under /usr/bin/time; returns wall ms, CPU ms (user + sys) and peak RSS. */
function timed(
  cmd: string,
  args: string[],
  stdoutFile?: string,
): { ms: number; cpuMs: number; rssKiB: number } {
  const shellCmd = `${[cmd, ...args].map((a) => `'${a}'`).join(' ')}${stdoutFile ? ` > '${stdoutFile}'` : ''}`
  const t0 = performance.now()
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', 'sh', '-c', shellCmd], {
    encoding: 'utf8',
  })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`)
  const [rss, user, sys] = (r.stderr.trim().split('\n').pop() as string).split(' ').map(Number)
  return { ms, cpuMs: ((user as number) + (sys as number)) * 1000, rssKiB: rss as number }
}

function rate(ms: number, bytes = size): number {
  return bytes / MB / (ms / 1000)
}

// The children run the built package; rebuild when dist/ is missing or older than src/.
const built = join(here, '../dist/index.js')
const srcDir = join(here, '../src')
const newest = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs))
if (!existsSync(built) || statSync(built).mtimeMs < newest) {
  execFileSync('pnpm', ['run', 'build'], { cwd: join(here, '..'), stdio: 'inherit' })
}

try {
  // 1. Plaintext file.
  const fd = openSync(plain, 'w')
  const block = Buffer.allocUnsafe(16 * 1024 * 1024)
  for (let left = size; left > 0; left -= block.length) {
    randomFillSync(block)
    writeSync(fd, block, 0, Math.min(block.length, left))
  }
  closeSync(fd)
  const cs = DEFAULT_CHUNK_SIZE
  const cores = availableParallelism()
  const nLanes =
    cores >= 2 && size >= PARALLEL_FILE_MIN_BYTES ? Math.min(MAX_FILE_THREADS, cores) : 1
  const lanes = nLanes > 1 ? `${nLanes} lanes` : '1 thread (auto)'
  console.log(
    `digicap capsule-core bench: ${(size / 1024 ** 2).toFixed(0)} MiB, chunk ${cs / 1024} KiB, node ${process.version}, ${cores} cores, files in ${filesDir}`,
  )

  // 2. Baselines: cat copy, openssl, age.
  // sealFile/openFile fsync before renaming into place, so the copy baseline does too.
  const copy = join(dir, 'copy.bin')
  const cat = timed('sh', ['-c', `cat '${plain}' > '${copy}' && sync '${copy}'`])
  rmSync(copy)
  rows.push({
    name: 'cat file > file + fsync (baseline)',
    ms: cat.ms,
    cpuMs: cat.cpuMs,
    rssKiB: cat.rssKiB,
  })

  const speed = execFileSync(
    'openssl',
    ['speed', '-evp', 'aes-256-gcm', '-bytes', '16384', '-seconds', '3'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  )
  const kbs = Number(/([0-9.]+)k\s*$/m.exec(speed.trim())?.[1])
  const opensslMBs = (kbs * 1000) / MB
  console.log(
    `openssl speed -evp aes-256-gcm (16 KiB blocks, 1 core): ${opensslMBs.toFixed(0)} MB/s`,
  )

  execFileSync('age-keygen', ['-o', join(dir, 'age.key')], { stdio: 'ignore' })
  const recipient = execFileSync('age-keygen', ['-y', join(dir, 'age.key')], {
    encoding: 'utf8',
  }).trim()
  const ageEnc = timed('age', ['-e', '-r', recipient, '-o', '/dev/null', plain])
  rows.push({
    name: 'age -e > /dev/null',
    ms: ageEnc.ms,
    cpuMs: ageEnc.cpuMs,
    rssKiB: ageEnc.rssKiB,
  })
  execFileSync('age', ['-e', '-r', recipient, '-o', join(dir, 'plain.age'), plain])
  const ageDec = timed('age', [
    '-d',
    '-i',
    join(dir, 'age.key'),
    '-o',
    '/dev/null',
    join(dir, 'plain.age'),
  ])
  rows.push({
    name: 'age -d > /dev/null',
    ms: ageDec.ms,
    cpuMs: ageDec.cpuMs,
    rssKiB: ageDec.rssKiB,
  })
  rmSync(join(dir, 'plain.age'))

  // 3. Digicap, each in a fresh child.
  const floor = child('baseline', {})
  rows.push({
    name: 'node + library loaded, no work (RSS floor)',
    ms: Number.NaN,
    rssKiB: floor.maxRssKiB,
  })
  const cipherSeal = child('cipher-seal', { chunkSize: cs, size })
  rows.push({
    name: 'digicap STREAM encrypt, in memory (no I/O)',
    ms: cipherSeal.ms,
    cpuMs: cipherSeal.cpuMs,
  })
  const cipherOpen = child('cipher-open', { chunkSize: cs, size })
  rows.push({
    name: 'digicap STREAM decrypt, in memory (no I/O)',
    ms: cipherOpen.ms,
    cpuMs: cipherOpen.cpuMs,
  })
  const sha = child('sha256', { size })
  rows.push({ name: 'SHA-256 alone, in memory (1 core)', ms: sha.ms, cpuMs: sha.cpuMs })
  const hmac = child('hmac-sha256', { size })
  rows.push({ name: 'HMAC-SHA256 alone, in memory (1 core)', ms: hmac.ms, cpuMs: hmac.cpuMs })
  const commit = child('commit', { input: plain, chunkSize: cs })
  rows.push({
    name: `digicap commitPlaintextFile, ${lanes}`,
    ms: commit.ms,
    cpuMs: commit.cpuMs,
    rssKiB: commit.maxRssKiB,
  })
  const commit1 = child('commit-1t', { input: plain, chunkSize: cs })
  rows.push({
    name: 'digicap commitPlaintextFile, 1 thread',
    ms: commit1.ms,
    cpuMs: commit1.cpuMs,
    rssKiB: commit1.maxRssKiB,
  })
  const base = { input: plain, chunkSize: cs, commitment: commit.commitment, size }
  const seal = child('seal', { ...base, output: '/dev/null' })
  rows.push({
    name: `digicap sealFile, encrypt pass, ${lanes} > /dev/null`,
    ms: seal.ms,
    cpuMs: seal.cpuMs,
    rssKiB: seal.maxRssKiB,
  })
  const seal1 = child('seal-1t', { ...base, output: '/dev/null' })
  rows.push({
    name: 'digicap sealFile, encrypt pass, 1 thread > /dev/null',
    ms: seal1.ms,
    cpuMs: seal1.cpuMs,
    rssKiB: seal1.maxRssKiB,
  })
  const sealFull = child('seal-full', { ...base, output: '/dev/null' })
  rows.push({
    name: 'digicap commit + sealFile (2 passes) > /dev/null',
    ms: sealFull.ms,
    cpuMs: sealFull.cpuMs,
    rssKiB: sealFull.maxRssKiB,
  })
  const sealOnePass = child('seal-onepass', { ...base, output: '/dev/null' })
  rows.push({
    name: 'digicap commitAndSealFile (1 pass) > /dev/null',
    ms: sealOnePass.ms,
    cpuMs: sealOnePass.cpuMs,
    rssKiB: sealOnePass.maxRssKiB,
  })
  const sealNode = child('seal-node', { ...base, output: '/dev/null' })
  rows.push({
    name: 'digicap seal, Node streams > /dev/null',
    ms: sealNode.ms,
    cpuMs: sealNode.cpuMs,
    rssKiB: sealNode.maxRssKiB,
  })
  const sealWeb = child('seal-web', { ...base, output: '/dev/null' })
  rows.push({
    name: 'digicap seal, Web streams > /dev/null',
    ms: sealWeb.ms,
    cpuMs: sealWeb.cpuMs,
    rssKiB: sealWeb.maxRssKiB,
  })
  const ptNode = child('passthrough-node', { input: plain, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'Node PassThrough, same source (RSS reference)',
    ms: ptNode.ms,
    cpuMs: ptNode.cpuMs,
    rssKiB: ptNode.maxRssKiB,
  })
  const ptWeb = child('passthrough-web', { input: plain, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'Web identity stream, same source (RSS ref.)',
    ms: ptWeb.ms,
    cpuMs: ptWeb.cpuMs,
    rssKiB: ptWeb.maxRssKiB,
  })
  const capsulePath = join(dir, 'plain.capsule')
  const sealFile = child('seal', { ...base, output: capsulePath })
  rows.push({
    name: 'digicap sealFile, encrypt pass > file',
    ms: sealFile.ms,
    cpuMs: sealFile.cpuMs,
    rssKiB: sealFile.maxRssKiB,
  })
  const open = child('open', { input: capsulePath, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: `digicap openFile, ${lanes} > /dev/null`,
    ms: open.ms,
    cpuMs: open.cpuMs,
    rssKiB: open.maxRssKiB,
  })
  const openNc = child('open-nocommit', { input: capsulePath, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'digicap openFile, no commitment > /dev/null',
    ms: openNc.ms,
    cpuMs: openNc.cpuMs,
    rssKiB: openNc.maxRssKiB,
  })
  const open1 = child('open-1t', { input: capsulePath, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'digicap openFile, 1 thread > /dev/null',
    ms: open1.ms,
    cpuMs: open1.cpuMs,
    rssKiB: open1.maxRssKiB,
  })
  const openNode = child('open-node', { input: capsulePath, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'digicap open, Node streams > /dev/null',
    ms: openNode.ms,
    cpuMs: openNode.cpuMs,
    rssKiB: openNode.maxRssKiB,
  })
  const openWeb = child('open-web', { input: capsulePath, chunkSize: cs, output: '/dev/null' })
  rows.push({
    name: 'digicap open, Web streams > /dev/null',
    ms: openWeb.ms,
    cpuMs: openWeb.cpuMs,
    rssKiB: openWeb.maxRssKiB,
  })
  const openFile = child('open', {
    input: capsulePath,
    chunkSize: cs,
    output: join(dir, 'opened.bin'),
  })
  rows.push({
    name: 'digicap openFile > file',
    ms: openFile.ms,
    cpuMs: openFile.cpuMs,
    rssKiB: openFile.maxRssKiB,
  })
  rmSync(capsulePath)
  rmSync(join(dir, 'opened.bin'))

  console.log('')
  console.log(
    `${'operation'.padEnd(48)} ${'MB/s'.padStart(8)} ${'MB/CPU-s'.padStart(9)} ${'peak RSS MiB'.padStart(13)}`,
  )
  for (const r of rows) {
    const wall = Number.isNaN(r.ms) ? '-' : rate(r.ms).toFixed(0)
    const cpu = r.cpuMs && !Number.isNaN(r.ms) ? rate(r.cpuMs).toFixed(0) : '-'
    console.log(
      `${r.name.padEnd(48)} ${wall.padStart(8)} ${cpu.padStart(9)} ${(r.rssKiB ? mib(r.rssKiB) : '-').padStart(13)}`,
    )
  }

  if (!noSweep) {
    console.log('\nchunk size sweep (seal encrypt pass > /dev/null, fresh child each):')
    for (const c of [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024]) {
      const r = child('seal', { ...base, chunkSize: c, output: '/dev/null' })
      console.log(
        `  ${`${c / 1024} KiB`.padEnd(10)} ${rate(r.ms).toFixed(0).padStart(6)} MB/s  peak RSS ${mib(r.maxRssKiB)} MiB`,
      )
    }
  }

  const ratio = (a: number, b: number) => (a / b).toFixed(2)
  const rssMax = Math.max(
    commit.maxRssKiB,
    commit1.maxRssKiB,
    seal.maxRssKiB,
    seal1.maxRssKiB,
    sealFull.maxRssKiB,
    sealOnePass.maxRssKiB,
    open.maxRssKiB,
    open1.maxRssKiB,
    openNc.maxRssKiB,
    sealFile.maxRssKiB,
    openFile.maxRssKiB,
  )
  const rssStreams = Math.max(
    sealNode.maxRssKiB,
    sealWeb.maxRssKiB,
    openNode.maxRssKiB,
    openWeb.maxRssKiB,
  )
  const rssIdentity = Math.max(ptNode.maxRssKiB, ptWeb.maxRssKiB)
  const check = (ok: boolean) => (ok ? 'PASS' : 'MISS')
  type M = { ms: number; cpuMs: number }
  /** Speed ratio a/b (b took longer => > 1), on wall time and on CPU time. */
  const line = (label: string, a: M, b: M, target: number) => {
    const wall = b.ms / a.ms
    const cpu = b.cpuMs / a.cpuMs
    console.log(
      `  ${label.padEnd(38)} ${wall.toFixed(2).padStart(5)}x wall ${cpu.toFixed(2).padStart(5)}x CPU  (target >= ${target})  ${check(wall >= target)}/${check(cpu >= target)}`,
    )
  }
  // openssl speed reports bytes per CPU second; compare CPU-basis rates to it.
  const vsOpenssl = (label: string, a: M) => {
    const wall = rate(a.ms) / opensslMBs
    const cpu = rate(a.cpuMs) / opensslMBs
    console.log(
      `  ${label.padEnd(38)} ${wall.toFixed(2).padStart(5)}x wall ${cpu.toFixed(2).padStart(5)}x CPU  (target >= 0.6)  ${check(wall >= 0.6)}/${check(cpu >= 0.6)}`,
    )
  }
  console.log(
    '\nratios (same run; wall = elapsed time, the speed; CPU = user + sys time of all threads,',
  )
  console.log('  so with lanes the CPU ratio is the efficiency, not the speed):')
  console.log(' seal, AEAD encrypt pass only (the path comparable to age -e; header given):')
  line(`sealFile encrypt pass, ${lanes} vs age -e`, seal, ageEnc, 1.2)
  line('sealFile encrypt pass, 1 thread vs age -e', seal1, ageEnc, 1.2)
  // What no implementation of the complete seal or open can beat here: the in-memory CPU
  // cost of SHA-256 plus AES-GCM per byte, spread perfectly over every core, with no I/O.
  const ideal = (a: M, b: M): M => ({
    ms: (a.cpuMs + b.cpuMs) / Math.min(cores, MAX_FILE_THREADS),
    cpuMs: a.cpuMs + b.cpuMs,
  })
  const coresLabel = `${Math.min(cores, MAX_FILE_THREADS)} cores`
  console.log(' seal, complete (commitment + encryption; SPEC §4.3, ADR 0004):')
  line(`commitAndSealFile, ${lanes} vs age -e`, sealOnePass, ageEnc, 1.2)
  line(`commit + sealFile, ${lanes} vs age -e`, sealFull, ageEnc, 1.2)
  line(`bound: SHA+AES, no I/O, ${coresLabel} vs age -e`, ideal(sha, cipherSeal), ageEnc, 1.2)
  console.log(' open, to /dev/null, commitment checked unless said:')
  line(`openFile, ${lanes} vs age -d`, open, ageDec, 1.5)
  line('openFile, 1 thread vs age -d', open1, ageDec, 1.5)
  line(`openFile chunks only, ${lanes} vs age -d`, openNc, ageDec, 1.5)
  line(`bound: SHA+AES, no I/O, ${coresLabel} vs age -d`, ideal(sha, cipherOpen), ageDec, 1.5)
  console.log(' against openssl speed (single core, CPU basis is the like-for-like one):')
  vsOpenssl('STREAM encrypt in memory vs openssl', cipherSeal)
  vsOpenssl('STREAM decrypt in memory vs openssl', cipherOpen)
  vsOpenssl('sealFile encrypt pass, 1 thread vs openssl', seal1)
  vsOpenssl('openFile chunks only vs openssl', openNc)
  console.log(' memory:')
  console.log(
    `  peak RSS, worst file-helper op       ${mib(rssMax)} MiB (target <= 96)  ${check(rssMax <= 96 * 1024)}`,
  )
  console.log(
    `  peak RSS, worst stream op            ${mib(rssStreams)} MiB (target <= 96)  ${check(rssStreams <= 96 * 1024)}`,
  )
  console.log(
    `  peak RSS, identity streams, no Digicap ${mib(rssIdentity)} MiB (the floor of the row above)`,
  )
  console.log(`  seal > file / cat copy (time ratio)  ${ratio(sealFile.ms, cat.ms)}x`)
  console.log(`  open > file / cat copy (time ratio)  ${ratio(openFile.ms, cat.ms)}x`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
