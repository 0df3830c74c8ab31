/**
 * Both apps as an operator installs them (ADR 0025): every workspace package packed
 * (`pnpm pack`), `@digicap/pi-node` and `@digicap/executor-node` installed from the tarballs
 * into an empty folder outside the workspace (offline, production dependencies only, no
 * install scripts), then run from that install: `--version`, `--help`, `pi-node init` +
 * `pi-node serve` (with its ops port) and `executor-node init` against a real anvil. The
 * installed tree's native addons must all have a linux-arm64 build (the Pi).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readlink, realpath, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  addonVerdicts,
  installedPackages,
  installFromTarballs,
  packWorkspace,
  ROOT,
} from '../../../scripts/installed-tree.ts'

const exec = promisify(execFile)
/** A unix datagram socket that appends each message (newlines as |) to a file. */
const NOTIFY_LISTENER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i"); fds.frombytes(payload[: len(payload) - len(payload) % 4])
            for fd in fds: os.close(fd)
    with open(sys.argv[2], "a") as f:
        f.write(data.decode().replace("\\n", "|") + "\\n")
`
let tmp: string
let prefix: string
let anvil: Anvil
const started: ChildProcess[] = []

/** The installed binaries, found through PATH as a shell would (node 24 first on it). */
const env = (extra: Record<string, string> = {}) => ({
  PATH: [join(prefix, 'node_modules', '.bin'), dirname(process.execPath), process.env.PATH].join(
    delimiter,
  ),
  HOME: tmp,
  ...extra,
})
const bin = (name: string, args: string[], extra: Record<string, string> = {}) =>
  exec(name, args, { env: env(extra), cwd: tmp })

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'digicap-installed-apps-'))
  prefix = join(tmp, 'prefix')
  const tarballs = join(tmp, 'tarballs')
  await mkdir(tarballs)
  const [, a] = await Promise.all([
    (async () => {
      const byName = packWorkspace(tarballs)
      installFromTarballs(prefix, ['@digicap/pi-node', '@digicap/executor-node'], byName)
    })(),
    startAnvil(),
  ])
  anvil = a
}, 240_000)

afterAll(async () => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL')
  await anvil?.stop()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

describe('pi-node and executor-node installed from packed tarballs', () => {
  it('is installed outside the workspace, from the tarballs', async () => {
    for (const app of ['pi-node', 'executor-node']) {
      const dir = await realpath(join(prefix, 'node_modules', '@digicap', app))
      expect(dir.startsWith(ROOT)).toBe(false)
      expect(dir.startsWith(await realpath(tmp))).toBe(true)
    }
  })

  it('--version and --help of both apps', async () => {
    for (const app of ['pi-node', 'executor-node']) {
      const v = await bin(app, ['--version'])
      expect(v.stdout).toBe(`${app} 0.0.0 (node ${process.versions.node})\n`)
      const h = await bin(app, ['--help'])
      expect(h.stdout).toContain('serve')
      expect(h.stdout).toContain('--log-level')
      const s = await bin(app, ['serve', '--help'])
      expect(s.stdout).toContain('--ops-port')
    }
  })

  it('pi-node init + serve (ops port up, /healthz ok), executor-node init, against anvil', async () => {
    const piEnv = { DIGICAP_DATA_DIR: join(tmp, 'pi'), DIGICAP_RPC_URL: anvil.rpcUrl }
    const init = await bin(
      'pi-node',
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
      piEnv,
    )
    const doc = JSON.parse(init.stdout)
    expect(doc).toMatchObject({ ok: true, command: 'init' })
    const config = doc.config ?? {}
    // As systemd starts it: INVOCATION_ID set (JSON logs on stdout), NOTIFY_SOCKET a fake
    // listener (python3: Node binds no unix datagram socket) that records what arrives.
    const socketPath = join(tmp, 'notify.sock')
    const received = join(tmp, 'notify.txt')
    const listener = spawn('python3', ['-c', NOTIFY_LISTENER, socketPath, received])
    started.push(listener)
    await new Promise((r) => listener.stdout.once('data', r))
    const serve = spawn('pi-node', ['serve', '--json', '--ops-port', '0'], {
      env: env({ ...piEnv, INVOCATION_ID: 'test', NOTIFY_SOCKET: socketPath }),
      cwd: tmp,
    })
    started.push(serve)
    let out = ''
    let err = ''
    serve.stdout.on('data', (d) => {
      out += d
    })
    serve.stderr.on('data', (d) => {
      err += d
    })
    const exited = new Promise((r) => serve.once('close', r))
    const lines = () =>
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
    const deadline = Date.now() + 60_000
    while (!lines().some((l) => l.command === 'serve')) {
      if (serve.exitCode !== null || Date.now() > deadline) throw new Error(`serve:\n${err}${out}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const ready = lines().find((l) => l.command === 'serve')
    expect(ready).toMatchObject({ ok: true, command: 'serve', keyguard: { running: true } })
    // Every stdout line is JSON (logs and the document); the logs carry time and level.
    expect(lines().some((l) => l.level === 'info' && typeof l.time === 'string')).toBe(true)
    expect(err).not.toContain('"level"')
    const notified = async () => (existsSync(received) ? await readFile(received, 'utf8') : '')
    const until = Date.now() + 20_000
    while (!(await notified()).includes('READY=1')) {
      if (Date.now() > until) throw new Error('no READY=1')
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(await notified()).toContain(`READY=1|STATUS=serving as ${ready.peerId}`)
    const health = await fetch(`${ready.ops.url}/healthz`)
    expect(health.status).toBe(200)
    expect(await (await fetch(`${ready.ops.url}/metrics`)).text()).toContain(
      'digicap_info{app="pi-node",version="0.0.0"} 1',
    )
    serve.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(await notified()).toContain('STOPPING=1')

    const contracts = JSON.parse((await bin('pi-node', ['status', '--json'], piEnv)).stdout).status
      .contracts
    expect(config).toBeDefined()
    const en = await bin('executor-node', [
      'init',
      '--data-dir',
      join(tmp, 'executor'),
      '--rpc-url',
      anvil.rpcUrl,
      '--capsule-registry',
      contracts.capsuleRegistry,
      '--node-registry',
      contracts.nodeRegistry,
      '--access-controller',
      contracts.accessController,
      '--json',
    ])
    expect(JSON.parse(en.stdout)).toMatchObject({ ok: true })
  })

  it('deploy/install-pi.sh puts app, data folder, env file and unit in place, and a second run changes nothing', async () => {
    const script = join(ROOT, 'apps', 'pi-node', 'deploy', 'install-pi.sh')
    const root = join(tmp, 'root')
    await mkdir(root)
    for (const app of ['pi-node', 'executor-node']) {
      const args = ['--app', app, '--from-prefix', prefix, '--root', root, '--no-start']
      const first = await exec('bash', [script, ...args], { env: env() })
      expect(first.stdout).toContain(`install-pi: done: ${app} 0.0.0`)
      const again = await exec('bash', [script, ...args], { env: env() })
      // Only notes, no change (the machine note is for non-arm64 hosts like CI's).
      expect(
        again.stdout
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('install-pi: note:')),
      ).toEqual([`install-pi: nothing to change: ${app} 0.0.0`])
      expect(await readlink(join(root, 'usr/local/bin', app))).toBe(
        `/usr/local/lib/digicap/${app}/node_modules/@digicap/${app}/bin/${app}.js`,
      )
      const unit = await readFile(join(root, 'etc/systemd/system', `${app}.service`), 'utf8')
      expect(unit).toContain('Type=notify')
      expect(unit).toContain('NotifyAccess=all')
      expect(unit).toContain(`ExecStart=/usr/local/bin/${app} serve`)
      expect(unit).toContain('ProtectSystem=strict')
      expect(await readFile(join(root, 'etc/digicap', `${app}.env`), 'utf8')).toContain(
        'DIGICAP_OPS_PORT',
      )
    }
    expect((await stat(join(root, 'var/lib/digicap'))).mode & 0o777).toBe(0o700)
    // The operator's env file is theirs: a re-run keeps it.
    await exec('bash', [
      '-c',
      `echo DIGICAP_LOG_LEVEL=debug > ${join(root, 'etc/digicap/pi-node.env')}`,
    ])
    await exec('bash', [script, '--from-prefix', prefix, '--root', root, '--no-start'], {
      env: env(),
    })
    expect(await readFile(join(root, 'etc/digicap/pi-node.env'), 'utf8')).toBe(
      'DIGICAP_LOG_LEVEL=debug\n',
    )
  }, 240_000)

  it('every native addon in the installed tree has a linux-arm64 build', () => {
    const pkgs = installedPackages(prefix)
    expect(pkgs.length).toBeGreaterThan(100)
    const verdicts = addonVerdicts(pkgs)
    const missing = verdicts.filter((v) => v.arm64 === undefined).map((v) => v.pkg)
    console.log(
      `installed: ${pkgs.length} packages; native addons: ${verdicts.map((v) => `${v.pkg} (${v.arm64})`).join(', ') || 'none'}`,
    )
    expect(missing).toEqual([])
  })
})
