/**
 * `pi-node seal` handing its seal to a running `pi-node serve` over `seal.sock` (ADR 0107), on
 * real parts: anvil, the software sealer, `serve` and `seal` as their own processes. The daemon
 * reaches the CLI's file through the CLI's descriptor (`/proc/<pid>/fd/<n>`); these tests try
 * what an attacker on the box would: no token, another file's inode, a descriptor that is not
 * there, malformed fields, two CLIs at once, the daemon killed mid-seal.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants, existsSync, readdirSync } from 'node:fs'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openFile } from '@digicap/capsule-core'
import { askDaemon, encodeFrame, FrameReader } from '@digicap/cli-kit/job-socket'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createKeyStore, softwareSealer, unwrapDataKey } from '@digicap/keyguard/local'
import { createDigicapNode, subscribeCapsuleAnnouncements } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CliDaemon,
  type Doc,
  HEAVY_MODULES,
  runCliListingModules,
  runJson,
  spawnCli,
  startCli,
} from './helpers/cli.ts'

const SEAL = ['--policy', 'maxRuns(2)', '--json']

async function until(cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('pi-node seal handed to a running serve (ADR 0107)', () => {
  let anvil: Anvil
  let dir: string
  let dataDir: string
  let env: Record<string, string>
  let init: Doc
  let daemon: CliDaemon | undefined

  const startServe = async () => {
    daemon = await startCli(['serve', '--json', '--status-interval-ms', '200'], env)
    await until(() => existsSync(join(dataDir, 'seal.token')))
    return daemon
  }
  /** The daemon's log lines that name a handed-over seal. */
  const handedOver = () =>
    (daemon?.stderr() ?? '').split('\n').filter((l) => l.includes('seal handed over')).length
  /** A request on seal.sock with the folder's token, as a process of its owner could send it. */
  const ask = (request: Record<string, unknown>) =>
    askDaemon(
      {
        dataDir,
        name: 'seal',
        version: 1,
        maxAnswerBytes: 1 << 20,
        error: (code, shortMessage, opts) =>
          Object.assign(new Error(shortMessage), { code: code ?? 'SEAL_SOCKET', ...opts }),
        closedHint: '',
      },
      request,
    )
  /** One frame sent as is (any token): the daemon's first answer. */
  const raw = (frame: Record<string, unknown>) =>
    new Promise<Doc>((resolve, reject) => {
      const sock = connect(join(dataDir, 'seal.sock'))
      const reader = new FrameReader(1 << 20)
      sock.on('data', (c: Buffer) => {
        const [first] = reader.push(c)
        if (first !== undefined) {
          sock.destroy()
          resolve(first as Doc)
        }
      })
      sock.on('error', reject)
      sock.write(encodeFrame(frame))
    })
  const opensTo = async (r: Doc, plaintext: Buffer) => {
    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
    const record = await (await createKeyStore(join(dataDir, 'keys'))).get(r.capsuleId)
    const sealer = softwareSealer({ keyFile: config.sealer.keyFile, allowInsecure: true })
    const dataKey = await unwrapDataKey(record?.wrappedKeys ?? [], sealer)
    const out = join(dir, `opened-${r.capsuleId}.bin`)
    await openFile({ input: r.capsulePath, output: out, dataKey, owner: init.owner.address })
    expect((await readFile(out)).equals(plaintext)).toBe(true)
  }

  beforeAll(async () => {
    anvil = await startAnvil()
    dir = await mkdtemp(join(tmpdir(), 'pi-node-handoff-'))
    dataDir = join(dir, 'node')
    env = { DIGICAP_DATA_DIR: dataDir, DIGICAP_RPC_URL: anvil.rpcUrl }
    init = await runJson(
      [
        'init',
        '--deploy',
        '--sealer',
        'software',
        '--allow-insecure-sealer',
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--json',
      ],
      env,
    )
    expect(init.code).toBe(0)
    await startServe()
  }, 180_000)

  afterAll(async () => {
    daemon?.child.kill('SIGKILL')
    await anvil?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('the daemon seals a data file for the CLI: no second node in the CLI, registered, opens to the bytes', async () => {
    const plaintext = randomBytes(3 * 1024 * 1024 + 17)
    const file = join(dir, 'photo.bin')
    await writeFile(file, plaintext)
    const before = handedOver()
    const r = await runCliListingModules(['seal', file, ...SEAL], env)
    expect(r.stderr).not.toContain('error[')
    expect(r.code).toBe(0)
    const doc = JSON.parse(r.stdout) as Doc
    // The CLI loaded no libp2p, helia, ethers or solc: the daemon did the work.
    expect(r.loaded.filter((m) => HEAVY_MODULES.test(m))).toEqual([])
    expect(handedOver()).toBe(before + 1)
    const { capsuleRegistry } = connectDigicap(init.contracts, anvil.provider)
    expect(await capsuleRegistry.ownerOf(doc.capsuleId)).toBe(init.owner.address)
    expect(doc.plaintextSize).toBe(plaintext.length)
    await opensTo(doc, plaintext)
  }, 120_000)

  it('a handed seal is announced from serve itself to the peers that listen', async () => {
    const listeners = await Promise.all([1, 2].map(() => createDigicapNode({ listen: [] })))
    try {
      const heard = listeners.map(() => [] as string[])
      for (const [i, l] of listeners.entries())
        subscribeCapsuleAnnouncements(l, (ann) => heard[i]?.push(ann.capsuleId))
      for (const l of listeners)
        await l.libp2p.dial(multiaddr(daemon?.ready.multiaddrs[0] as string))
      // Gossipsub's mesh forms on its heartbeat (1 s): the daemon must see both subscribed.
      await until(() => listeners.every((l) => l.libp2p.getPeers().length > 0))
      await new Promise((r) => setTimeout(r, 1500))
      const file = join(dir, 'announced.txt')
      await writeFile(file, 'announce me\n')
      const r = await runJson(['seal', file, ...SEAL], env)
      expect(r.code).toBe(0)
      // Both heard it from serve (a one-shot seal's short-lived node would reach serve alone).
      expect(r.announced).toEqual({ ok: true, recipients: 2 })
      await until(() => heard.every((h) => h.includes(r.capsuleId)))
    } finally {
      await Promise.all(listeners.map((l) => l.stop()))
    }
  }, 120_000)

  it('--no-daemon, a code capsule and a missing --policy are not handed over', async () => {
    const file = join(dir, 'here.txt')
    await writeFile(file, 'sealed in its own process\n')
    const before = handedOver()
    const r = await runJson(['seal', file, '--no-daemon', ...SEAL], env)
    expect(r.code).toBe(0)
    await opensTo(r, await readFile(file))
    const noPolicy = await runJson(['seal', file, '--json'], env)
    expect(noPolicy.code).toBe(2)
    expect(noPolicy.error.message).toContain('seal needs --policy')
    // A code capsule (its bundle is read from the CLI's folders) is sealed in the CLI.
    const code = join(dir, 'main.js')
    await writeFile(code, 'export default () => 1\n')
    const bundle = await runJson(
      ['seal', file, '--runtime', 'quickjs', '--entry', 'main.js', '--code', code, ...SEAL],
      env,
    )
    expect(bundle.code).toBe(0)
    expect(handedOver()).toBe(before)
  }, 120_000)

  it('refuses a request without the token, for another inode, for a descriptor that is not there, with malformed fields; seals nothing', async () => {
    const file = join(dir, 'victim.txt')
    await writeFile(file, 'not to be sealed\n')
    const fh = await open(file, 'r')
    try {
      const { dev, ino } = await fh.stat({ bigint: true })
      const input = { pid: process.pid, fd: fh.fd, dev: String(dev), ino: String(ino) }
      const options = { policy: 'maxRuns(1)' }
      const reason = (p: Promise<unknown>) =>
        p.then(
          () => 'sealed',
          (e: { code?: string; details?: { reason?: string } }) => `${e.code}:${e.details?.reason}`,
        )
      const capsules = () => readdirSync(join(dataDir, 'capsules')).length
      const count = capsules()
      const wrong = randomBytes(32).toString('hex')
      for (const token of [wrong, '', undefined]) {
        const answer = await raw({ v: 1, token, input, options })
        expect(answer).toMatchObject({ type: 'error', code: 'SEAL_SOCKET' })
        expect(answer.details.reason).toBe('token')
      }
      expect((await raw({ v: 2, input, options })).details.reason).toBe('version')
      expect(await reason(ask({ input: { ...input, ino: String(ino + 1n) }, options }))).toBe(
        'SEAL_SOCKET:input-changed',
      )
      expect(await reason(ask({ input: { ...input, fd: 9999 }, options }))).toBe(
        'SEAL_SOCKET:input-unreadable',
      )
      // Not a regular file (a FIFO, held here without blocking): refused before it is opened,
      // and the daemon keeps sealing.
      const fifo = join(dir, 'pipe')
      execFileSync('mkfifo', [fifo])
      const pipe = await open(fifo, constants.O_RDWR | constants.O_NONBLOCK)
      try {
        const p = await pipe.stat({ bigint: true })
        const fifoInput = { pid: process.pid, fd: pipe.fd, dev: String(p.dev), ino: String(p.ino) }
        expect(await reason(ask({ input: fifoInput, options }))).toBe(
          'SEAL_SOCKET:input-not-a-file',
        )
      } finally {
        await pipe.close()
      }
      // The daemon's own descriptors are never a CLI's input.
      const own = { ...input, pid: daemon?.child.pid as number }
      expect(await reason(ask({ input: own, options }))).toBe('SEAL_SOCKET:input-unreadable')
      for (const bad of [
        { input: { ...input, pid: -1 }, options },
        { input: { ...input, dev: '1e3' }, options },
        { input, options: { policy: '' } },
        { input, options: { ...options, receivers: ['0x00'] } },
        { input, options: { ...options, receivers: [{ publicKey: '0x1234' }] } },
        { input, options: { ...options, memoryLimit: -5 } },
        { input, options: { ...options, runtime: 'quickjs', code: '/etc' } },
      ]) {
        expect(await reason(ask(bad)), JSON.stringify(bad)).toBe('SEAL_SOCKET:malformed')
      }
      expect(capsules()).toBe(count)
      expect(daemon?.child.exitCode).toBeNull()
    } finally {
      await fh.close()
    }
  }, 60_000)

  it('two CLIs at once: both sealed by the daemon, one after the other, each its own bytes', async () => {
    const files = await Promise.all(
      [1, 2].map(async (i) => {
        const f = join(dir, `pair-${i}.bin`)
        await writeFile(f, randomBytes(2 * 1024 * 1024 + i))
        return f
      }),
    )
    const before = handedOver()
    const runs = await Promise.all(files.map((f) => runJson(['seal', f, ...SEAL], env)))
    for (const r of runs) expect(r.code).toBe(0)
    expect(runs[0]?.capsuleId).not.toBe(runs[1]?.capsuleId)
    expect(handedOver()).toBe(before + 2)
    // One after the other: the second started only once the first had ended.
    const turns = (daemon?.stderr() ?? '')
      .split('\n')
      .map((l) => /"message":"handed seal (started|ended)"/.exec(l)?.[1])
      .filter((t) => t !== undefined)
      .slice(-4)
    expect(turns).toEqual(['started', 'ended', 'started', 'ended'])
    for (const [i, r] of runs.entries()) await opensTo(r, await readFile(files[i] as string))
  }, 120_000)

  it('serve stopped (SIGTERM) during a handed seal lets it finish, then exits cleanly', async () => {
    const file = join(dir, 'stopped.bin')
    await writeFile(file, randomBytes(64 * 1024 * 1024))
    const capsuleDirs = join(dataDir, 'capsules')
    const known = new Set(readdirSync(capsuleDirs))
    const before = handedOver()
    const sealing = runJson(['seal', file, ...SEAL], env)
    await until(() =>
      readdirSync(capsuleDirs).some(
        (d) =>
          !known.has(d) && readdirSync(join(capsuleDirs, d)).some((f) => f.endsWith('.partial')),
      ),
    )
    daemon?.child.kill('SIGTERM')
    expect(await daemon?.exited).toBe(0)
    const r = await sealing
    expect(r.code).toBe(0)
    expect(handedOver()).toBe(before + 1)
    await opensTo(r, await readFile(file))
    await startServe()
  }, 120_000)

  it('the daemon killed mid-seal: the CLI fails with SEAL_SOCKET closed; a restarted serve leaves no half capsule and seals again', async () => {
    const file = join(dir, 'large.bin')
    await writeFile(file, randomBytes(96 * 1024 * 1024))
    const capsuleDirs = join(dataDir, 'capsules')
    const list = () => (existsSync(capsuleDirs) ? readdirSync(capsuleDirs) : [])
    const known = new Set(list())
    const cli = spawnCli(['seal', file, ...SEAL], env)
    let out = ''
    cli.stdout.on('data', (c) => {
      out += c
    })
    let err = ''
    cli.stderr.on('data', (c) => {
      err += c
    })
    const exited = new Promise<number | null>((res) => cli.once('exit', (c) => res(c)))
    // Killed while the daemon writes this capsule (its `.partial` file is there): in the lanes
    // or the add.
    const writing = () =>
      list().some(
        (d) =>
          !known.has(d) && readdirSync(join(capsuleDirs, d)).some((f) => f.endsWith('.partial')),
      )
    await until(writing, 60_000)
    daemon?.child.kill('SIGKILL')
    expect(await exited).toBe(1)
    expect(JSON.parse(out)).toMatchObject({
      ok: false,
      error: { code: 'SEAL_SOCKET', details: { reason: 'closed' } },
    })
    expect(err).not.toContain('"capsuleId"')
    await startServe()
    // A killed seal's temp files are gone once the node reopens its folder.
    const fresh = list().filter((d) => !known.has(d))
    expect(fresh.length).toBeGreaterThan(0)
    for (const d of fresh) {
      const left = readdirSync(join(capsuleDirs, d))
      expect(left.filter((f) => f.startsWith('.tmp-') || f.endsWith('.partial'))).toEqual([])
    }
    const again = await runJson(['seal', file, ...SEAL], env)
    expect(again.code).toBe(0)
    await opensTo(again, await readFile(file))
  }, 180_000)
})
