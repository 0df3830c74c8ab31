/**
 * Both apps as an operator installs them (ADR 0025): every workspace package packed
 * (`pnpm pack`), `@digicap/pi-node` and `@digicap/executor-node` installed from the tarballs
 * into an empty folder outside the workspace (offline, production dependencies only, no
 * install scripts), then run from that install: `--version`, `--help`, `pi-node init` +
 * `pi-node serve` (with its ops port) and `executor-node init` against a real anvil; then
 * `install-pi.sh` lays both apps out in a root folder, and a real systemd (booted in that folder
 * by systemd-nspawn: scripts/systemd-container.ts) starts the installed pi-node unit as on a Pi. The
 * installed tree's native addons must all have a linux-arm64 build (the Pi).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import {
  appendFile,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  realpath,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { collectOutput, createReleaseManifest } from '@digicap/cli-kit'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  addonVerdicts,
  installedPackages,
  installFromTarballs,
  packWorkspace,
  ROOT,
} from '../../../scripts/installed-tree.ts'
import {
  type BootedContainer,
  bootContainer,
  prepareBootableRoot,
  SERVICE_UID,
} from '../../../scripts/systemd-container.ts'

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
/** Where install-pi.sh lays the apps out (`--root`). */
let root: string
let anvil: Anvil
let tpm: Swtpm
let box: BootedContainer | undefined
/**
 * The unit's first `verify-install` on the fresh pi-node install (it hashes the whole 180 MB
 * tree): started by the install test beside the executor-node install, checked by the next.
 */
let firstVerify: Promise<{ stdout: string }> | undefined
/** The contracts `pi-node init --deploy` deployed. */
let contracts: { capsuleRegistry: string; nodeRegistry: string; accessController: string }
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
/** `install-pi.sh --app <app> --from-prefix <the install> --root <root> --no-start`: its stdout. */
const installPi = async (app: string, extra: string[] = []) =>
  (
    await exec(
      'bash',
      [
        join(ROOT, 'apps', 'pi-node', 'deploy', 'install-pi.sh'),
        ...['--app', app, '--from-prefix', prefix, '--root', root, '--no-start', ...extra],
      ],
      { env: env() },
    )
  ).stdout
/** pi-node's lib folder in `root`. */
const piLib = () => join(root, 'usr/local/lib/digicap/pi-node')

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'digicap-installed-apps-'))
  prefix = join(tmp, 'prefix')
  const tarballs = join(tmp, 'tarballs')
  await mkdir(tarballs)
  const [, a, t] = await Promise.all([
    (async () => {
      const byName = packWorkspace(tarballs)
      installFromTarballs(prefix, ['@digicap/pi-node', '@digicap/executor-node'], byName)
    })(),
    startAnvil(),
    startSwtpm({ stateDir: await mkdtemp(join(tmp, 'swtpm-')) }),
  ])
  anvil = a
  tpm = t
}, 240_000)

afterAll(async () => {
  await firstVerify?.catch(() => undefined)
  await box?.stop()
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL')
  await Promise.all([anvil?.stop(), tpm?.stop()])
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
    await Promise.all(
      ['pi-node', 'executor-node'].map(async (app) => {
        const [v, h, s] = await Promise.all([
          bin(app, ['--version']),
          bin(app, ['--help']),
          bin(app, ['serve', '--help']),
        ])
        expect(v.stdout).toBe(`${app} 0.0.0 (node ${process.versions.node})\n`)
        expect(h.stdout).toContain('serve')
        expect(h.stdout).toContain('--log-level')
        expect(s.stdout).toContain('--ops-port')
        expect(s.stdout).toContain('--health-cache-ms')
      }),
    )
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
    // A seal from the install, outside the workspace: the bundle finds
    // @digicap/contracts/compiler from its own folder and the policy compiler's child process
    // loads solc from there (ADR 0103); in the workspace a link would find them either way.
    const plain = join(tmp, 'installed-seal.bin')
    await writeFile(plain, randomBytes(5000))
    const seal = await bin('pi-node', ['seal', plain, '--policy', 'maxRuns(2)', '--json'], piEnv)
    const sealed = JSON.parse(seal.stdout)
    expect(sealed.capsuleId).toMatch(/^0x[0-9a-f]{64}$/)
    expect(sealed.cid).toMatch(/^baf[ky]/)
    const config = doc.config ?? {}
    // As systemd starts it: INVOCATION_ID set (JSON logs on stdout), NOTIFY_SOCKET a fake
    // listener (python3: Node binds no unix datagram socket) that records what arrives.
    const socketPath = join(tmp, 'notify.sock')
    const received = join(tmp, 'notify.txt')
    const listener = spawn('python3', ['-c', NOTIFY_LISTENER, socketPath, received])
    started.push(listener)
    await new Promise((r) => listener.stdout.once('data', r))
    const serve = spawn('pi-node', ['serve', '--json', '--ops-port', '0'], {
      // The software sealer, accepted on purpose by /healthz's tpm check.
      env: env({
        ...piEnv,
        INVOCATION_ID: 'test',
        NOTIFY_SOCKET: socketPath,
        DIGICAP_ALLOW_SOFTWARE_SEALER: '1',
      }),
      cwd: tmp,
    })
    started.push(serve)
    const { stdout, stderr, exited } = collectOutput(serve)
    const lines = () =>
      stdout()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
    const deadline = Date.now() + 60_000
    while (!lines().some((l) => l.command === 'serve')) {
      if (serve.exitCode !== null || Date.now() > deadline)
        throw new Error(`serve:\n${stderr()}${stdout()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const ready = lines().find((l) => l.command === 'serve')
    expect(ready).toMatchObject({ ok: true, command: 'serve', keyguard: { running: true } })
    // Every stdout line is JSON (logs and the document); the logs carry time and level.
    expect(lines().some((l) => l.level === 'info' && typeof l.time === 'string')).toBe(true)
    expect(stderr()).not.toContain('"level"')
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

    contracts = JSON.parse((await bin('pi-node', ['status', '--json'], piEnv)).stdout).status
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

  it('executor-node run without a daemon starts its node from the bundled @digicap/executor/one-shot in the installed tree (ADR 0052)', async () => {
    const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy' // nobody has it
    const args = ['run', cid, '--fetch-timeout', '1', '--no-daemon', '--data-dir']
    const listen = ['--listen', '/ip4/127.0.0.1/tcp/0']
    const failed = await bin('executor-node', [...args, join(tmp, 'executor'), ...listen]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    )
    expect(failed?.code).toBe(1)
    // The node started (libp2p, helia's class, the chain client, the keyguard's secrets: all
    // from the bundle), asked for the capsule, and stopped.
    expect(failed?.stderr).toMatch(/✓ start\s+\d+ ms\s+process \d+, modules \d+, node \d+/)
    expect(failed?.stderr).toContain('error[CAPSULE_FETCH_TIMEOUT]')
  }, 60_000)

  it("deploy/install-pi.sh puts app, data folder, env file and unit in place; a second run changes nothing and keeps the operator's env file", async () => {
    root = join(tmp, 'root')
    await mkdir(root)
    // Each run compares (or copies) the whole installed tree: one second run proves the
    // idempotence for both apps (the script's steps do not depend on the app).
    const piNode = await installPi('pi-node')
    // The unit's first verify-install reads pi-node's tree while executor-node's is copied.
    firstVerify = exec(
      process.execPath,
      [
        join(piLib(), 'node_modules/@digicap/pi-node/bin/pi-node.js'),
        ...['verify-install', '--measure', '--json'],
      ],
      // ExecStartPre as the unit runs it: no flags, nothing pinned yet (no init).
      { env: env({ DIGICAP_DATA_DIR: join(root, 'var/lib/digicap') }) },
    )
    const firstRuns = {
      'pi-node': piNode,
      'executor-node': await installPi('executor-node', ['--oci']),
    }
    // Done reading the tree before a re-run (its verdict is the next test's).
    await firstVerify.catch(() => undefined)
    for (const app of ['pi-node', 'executor-node'] as const) {
      const out = firstRuns[app]
      expect(out).toContain(`install-pi: done: ${app} 0.0.0`)
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
    // The OCI drop-in (executor-node --oci) is the shipped file.
    expect(
      await readFile(join(root, 'etc/systemd/system/executor-node.service.d/oci.conf'), 'utf8'),
    ).toBe(await readFile(join(ROOT, 'apps/executor-node/deploy/oci.conf'), 'utf8'))
    expect((await stat(join(root, 'var/lib/digicap'))).mode & 0o777).toBe(0o700)
    // The operator's env file is theirs: a re-run keeps it.
    const envFile = join(root, 'etc/digicap/pi-node.env')
    await writeFile(envFile, 'DIGICAP_LOG_LEVEL=debug\n')
    const again = await installPi('pi-node')
    // Only notes, no change (the machine note is for non-arm64 hosts like CI's).
    expect(
      again
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('install-pi: note:')),
    ).toEqual(['install-pi: nothing to change: pi-node 0.0.0'])
    expect(await readFile(envFile, 'utf8')).toBe('DIGICAP_LOG_LEVEL=debug\n')
  }, 240_000)

  it("install-pi.sh signs a release manifest of the installed tree: the unit's verify-install passes on the fresh install (the script's cases: install-manifest.test.ts)", async () => {
    const lib = piLib()
    expect((await readFile(`${lib}.release-key`, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/)
    expect((await stat(`${lib}.release.json`)).mode & 0o777).toBe(0o644)
    expect((await stat(join(root, 'etc/digicap/release-signing.pem'))).mode & 0o777).toBe(0o600)
    // ExecStartPre as the unit runs it on the fresh install (started by the test above).
    if (!firstVerify) throw new Error('the install test did not run')
    const start = await firstVerify
    const doc = JSON.parse(start.stdout)
    expect(doc.verified).toMatchObject({ release: '@digicap/pi-node@0.0.0', root: lib })
    expect(doc.verified.files).toBeGreaterThan(1000)
    expect(doc.measured).toMatchObject({ state: 'not-covered' })
  }, 120_000)

  it('a real systemd (nspawn) starts the installed pi-node unit: start returns once READY=1, hardened, verified, JSON in the journal', async () => {
    await prepareBootableRoot(root, await realpath(process.execPath))
    // What differs from a Pi: no /dev/tpmrm0 here, the TPM is a swtpm on loopback TCP.
    await mkdir(join(root, 'etc/systemd/system/pi-node.service.d'))
    await writeFile(
      join(root, 'etc/systemd/system/pi-node.service.d/test.conf'),
      `[Unit]\nConditionPathExists=\n[Service]\nEnvironment=DIGICAP_TCTI=${tpm.tcti}\n`,
    )
    // The operator's settings, where the Pi guide puts them.
    await appendFile(
      join(root, 'etc/digicap/pi-node.env'),
      // swtpm is not hardware-backed: /healthz's tpm check accepts it only when told.
      `DIGICAP_RPC_URL=${anvil.rpcUrl}\nDIGICAP_OPS_PORT=0\nDIGICAP_ALLOW_SOFTWARE_SEALER=1\n`,
    )
    // The release, signed over the app's own package (the whole 180 MB tree takes ~15 s to hash
    // here; verify-install.test.ts covers what a manifest catches): ExecStartPre checks it.
    const release = generateKeyPairSync('ed25519')
    const appDir = await realpath(
      join(root, 'usr/local/lib/digicap/pi-node/node_modules/@digicap/pi-node'),
    )
    const manifest = await createReleaseManifest(
      appDir,
      '@digicap/pi-node@0.0.0',
      release.privateKey,
    )
    const manifestFile = join(root, 'var/lib/digicap/release.json')
    await writeFile(manifestFile, JSON.stringify(manifest))
    await chown(manifestFile, SERVICE_UID, SERVICE_UID)
    const releaseKey = (release.publicKey.export({ format: 'der', type: 'spki' }) as Buffer)
      .subarray(12)
      .toString('hex')

    box = await bootContainer({ root })
    // `sudo -u digicap pi-node init` in the container: its paths are the Pi's.
    const init = await box.run(
      [
        'pi-node',
        'init',
        '--tcti',
        tpm.tcti,
        '--rpc-url',
        anvil.rpcUrl,
        '--capsule-registry',
        contracts.capsuleRegistry as string,
        '--node-registry',
        contracts.nodeRegistry as string,
        '--access-controller',
        contracts.accessController as string,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--release-manifest',
        '/var/lib/digicap/release.json',
        '--release-key',
        releaseKey,
        '--release-root',
        appDir.slice(root.length),
        '--json',
      ],
      { user: 'digicap', env: { HOME: '/var/lib/digicap', DIGICAP_DATA_DIR: '/var/lib/digicap' } },
    )
    expect(init.code, init.stderr).toBe(0)

    const start = await box.systemctl('start', 'pi-node')
    expect(
      start.code,
      `${start.stderr}\n${(await box.run(['journalctl', '-u', 'pi-node', '--no-pager'])).stdout}`,
    ).toBe(0)
    // Right when start returns, with no retry: the daemon serves.
    const ops = JSON.parse(await readFile(join(root, 'var/lib/digicap/ops.json'), 'utf8'))
    const health = await fetch(`${ops.url}/healthz`)
    expect(health.status).toBe(200)
    const show = Object.fromEntries(
      (
        await box.systemctl(
          'show',
          'pi-node',
          '-p',
          'ActiveState,SubState,StatusText,MainPID,ExecMainStartTimestampMonotonic,ActiveEnterTimestampMonotonic',
        )
      ).stdout
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    expect(show).toMatchObject({ ActiveState: 'active', SubState: 'running' })
    expect(show.StatusText).toMatch(/^serving as 12D3KooW/)
    expect(Number(show.MainPID)).toBe(ops.pid)
    // systemd waited for READY=1: active seconds after the process started (Type=simple: ~0).
    const waitedUs =
      Number(show.ActiveEnterTimestampMonotonic) - Number(show.ExecMainStartTimestampMonotonic)
    expect(waitedUs).toBeGreaterThan(500_000)
    // The unit's sandbox holds on the running daemon.
    const proc = (await box.run(['cat', `/proc/${show.MainPID}/status`])).stdout
    expect(proc).toMatch(new RegExp(`^Uid:\\s+${SERVICE_UID}\\s`, 'm'))
    expect(proc).toMatch(/^NoNewPrivs:\s+1$/m)
    expect(proc).toMatch(/^CapEff:\s+0+$/m)
    expect(proc).toMatch(/^Seccomp:\s+2$/m)
    const security = await box.run(['systemd-analyze', 'security', 'pi-node', '--no-pager'])
    const exposure = Number(
      /exposure level for pi-node\.service: ([\d.]+)/.exec(security.stdout)?.[1],
    )
    expect(exposure).toBeLessThanOrEqual(4)
    // Everything the unit's processes wrote to the journal is a JSON line: ExecStartPre's
    // document (it verified the signed release), the logs (the swtpm warning too), serve's.
    const journal = (
      await box.run(['journalctl', '_SYSTEMD_UNIT=pi-node.service', '-o', 'cat', '--no-pager'])
    ).stdout
      .split('\n')
      .filter((l) => l !== '')
    const notJson = journal.filter((l) => {
      try {
        JSON.parse(l)
        return false
      } catch {
        return true
      }
    })
    expect(notJson).toEqual([])
    const docs = journal.map((l) => JSON.parse(l))
    expect(docs.find((d) => d.command === 'verify-install')).toMatchObject({
      ok: true,
      verified: { release: '@digicap/pi-node@0.0.0' },
    })
    expect(docs.find((d) => d.message === 'ops port listening')).toMatchObject({ level: 'info' })
    expect(docs.find((d) => /software emulator/.test(d.message ?? ''))).toMatchObject({
      level: 'warn',
    })
    expect(docs.find((d) => d.command === 'serve')).toMatchObject({
      ok: true,
      peerId: String(show.StatusText).replace('serving as ', ''),
    })

    // `pi-node seal` hands a data seal to the unit's daemon (ADR 0107), from a file under /home:
    // the unit's ProtectHome hides it from the daemon's mounts, which reach it only through the
    // CLI's descriptor (/proc/<pid>/fd/<n>) under the real sandbox (seccomp, no capabilities).
    const owner = JSON.parse(init.stdout).owner.address as string
    await anvil.provider.send('anvil_setBalance', [owner, '0x56bc75e2d63100000'])
    await mkdir(join(root, 'home/handed'), { recursive: true })
    await chown(join(root, 'home/handed'), SERVICE_UID, SERVICE_UID)
    const handedFile = join(root, 'home/handed/handed.bin')
    const handedBytes = randomBytes(3 * 1024 * 1024 + 1)
    await writeFile(handedFile, handedBytes)
    await chown(handedFile, SERVICE_UID, SERVICE_UID)
    const handed = await box.run(
      ['pi-node', 'seal', '/home/handed/handed.bin', '--policy', 'maxRuns(1)', '--json'],
      { user: 'digicap', env: { HOME: '/var/lib/digicap', DIGICAP_DATA_DIR: '/var/lib/digicap' } },
    )
    expect(handed.code, `${handed.stdout}\n${handed.stderr}`).toBe(0)
    // The daemon's own view of /home is empty: it read the file through the descriptor only.
    const daemonHome = await box.run(['ls', '-A', `/proc/${show.MainPID}/root/home`])
    expect(daemonHome.code, daemonHome.stderr).toBe(0)
    expect(daemonHome.stdout).not.toContain('handed')
    expect((await box.run(['ls', '-A', '/home'])).stdout).toContain('handed')
    const handedDoc = JSON.parse(handed.stdout)
    expect(handedDoc.plaintextSize).toBe(handedBytes.length)
    const handedLog = (
      await box.run(['journalctl', '_SYSTEMD_UNIT=pi-node.service', '-o', 'cat', '--no-pager'])
    ).stdout
    expect(handedLog).toContain('seal handed over by pi-node seal')
    const ended = handedLog
      .split('\n')
      .filter((l) => l.includes('"message":"handed seal ended"'))
      .map((l) => JSON.parse(l))
    expect(ended).toEqual([expect.objectContaining({ ok: true })])

    const stop = await box.systemctl('stop', 'pi-node')
    expect(stop.code).toBe(0)
    const after = (
      await box.systemctl('show', 'pi-node', '-p', 'ActiveState,Result,ExecMainStatus')
    ).stdout
    expect(after).toContain('ActiveState=inactive')
    expect(after).toContain('Result=success')
  }, 120_000)

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
