#!/usr/bin/env node
/**
 * `pnpm demo`: the whole Digicap flow on one machine, on loopback, in temp folders.
 *
 * Every node is its own process, started from the apps' real CLIs (`pi-node`, `executor-node`),
 * so what runs here is what an operator runs:
 *
 * anvil (+ swtpm when installed) → the `local` deployment (anvil account 0) → `pi-node init`
 * (owner keys in the TPM; dev ETH for the owner and its keyguard operator)
 * → `executor-node init` ×2 (executor, receiver) → executor funded + `register --stake`
 * → `pi-node serve` (helia + keyguard) → `executor-node receive` → `pi-node seal` (salaries CSV +
 * QuickJS aggregate, policy `all(minReputation(1), maxRuns(2))`, receiver = the receiver's
 * X25519 key) → `executor-node run` by the chain path, then by the fast path (the receiver
 * decrypts each result) → a third run the policy refuses (MAX_RUNS_REACHED) → the image capsule
 * (image-step.ts) → the verifier committee (committee-step.ts: an honest run settled, a tampered
 * executor slashed) → everything stopped, temp folders removed.
 *
 * Usage: `node src/demo.ts [--json] [--keep] [--sealer tpm2|software]`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants as fsConstants, mkdirSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { collectOutput } from '@digicap/cli-kit'
import { connectDigicap, deployDigicap, LOCAL_NETWORK } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createExecutorNode, type ExecutorNode, readSecrets } from '@digicap/executor-node'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { getBytes, parseEther, type Wallet } from 'ethers'
import { type AttestationWatch, type WatchedRun, watchAttestation } from './attestation-watch.ts'
import { type CommitteeOutcome, committeeStep, DEMO_SETTLEMENT } from './committee-step.ts'
import { imageStep } from './image-step.ts'
import { startReaper } from './reaper.ts'
import type { Actor, Doc, StepContext } from './step-context.ts'

const ACTORS: readonly Actor[] = ['chain', 'pi-node', 'executor', 'receiver', 'committee']

interface Stage {
  actor: Actor
  name: string
  /** Milliseconds since the demo started. */
  startMs: number
  durationMs: number
  detail?: string
  /** The executor's own per-stage timings of a run (fetch, verify, grant, …). */
  steps?: Record<string, number>
}

const POLICY = 'all(minReputation(1), maxRuns(2))'
/** With a TPM for the executor: released only to a key in a valid before-quote of its AK. */
const ATTESTED_POLICY = 'all(minReputation(1), maxRuns(2), attested())'
// A new executor starts at reputation 1 (NodeRegistry.INITIAL_REPUTATION) and earns more only
// from settled, attested runs (41 to reach 50): minReputation(1) admits any executor never
// caught failing (a fail verdict halves 1 to 0).
const MIN_REPUTATION = 1n
const STAKE_ETH = '0.01'
const HERE = dirname(fileURLToPath(import.meta.url))
const DATASET = join(HERE, '..', 'capsule', 'salaries.csv')
const require = createRequire(import.meta.url)
// The capsule's code is @digicap/executor's own aggregate example (shipped in the package).
const PROGRAM = join(
  dirname(require.resolve('@digicap/executor/package.json')),
  'examples',
  'aggregate',
  'main.js',
)
const PI_NODE = join(dirname(require.resolve('@digicap/pi-node/package.json')), 'dist', 'cli.js')
const EXECUTOR_NODE = join(
  dirname(require.resolve('@digicap/executor-node/package.json')),
  'dist',
  'cli.js',
)

function usageError(message: string): never {
  process.stderr.write(`error[USAGE]: ${message}\n  hint: pnpm demo --help\n`)
  process.exit(2)
}

function parseFlags() {
  try {
    return parseArgs({
      options: {
        json: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        sealer: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values
  } catch (err) {
    return usageError((err as Error).message)
  }
}
const flags = parseFlags()
if (flags.help) {
  process.stdout.write(
    'usage: pnpm demo [--json] [--keep] [--sealer tpm2|software]\n\n' +
      '  --json     one JSON document on stdout (progress still on stderr)\n' +
      '  --keep     keep the nodes running (the pi-node status page, metrics) and the temp folder\n' +
      '             (data folders, logs/) until Ctrl-C\n' +
      '  --sealer   force the sealer (default: tpm2 with swtpm when installed, else software)\n',
  )
  process.exit(0)
}
if (flags.sealer !== undefined && flags.sealer !== 'tpm2' && flags.sealer !== 'software') {
  usageError('--sealer must be tpm2 or software')
}

const json = flags.json === true
const color = !json && process.stdout.isTTY === true && !process.env.NO_COLOR
const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s)
const bold = (s: string) => paint('1', s)
const dim = (s: string) => paint('2', s)
const red = (s: string) => paint('31', s)
const green = (s: string) => paint('32', s)
const yellow = (s: string) => paint('33', s)
const progressColor = !json && process.stderr.isTTY === true && !process.env.NO_COLOR

const t0 = performance.now()
const now = () => performance.now() - t0
const stages: Stage[] = []
/** Stops what the demo started if the demo dies without doing it (SIGKILL, an abort). */
const reaper = startReaper()
/**
 * Every process the demo started (pid, what it is), reported so a test can check they are
 * gone; each is told to the reaper as it is added.
 */
class StartedProcesses extends Array<{ pid: number; what: string }> {
  override push(...items: { pid: number; what: string }[]): number {
    for (const item of items) reaper.watch(item.pid)
    return super.push(...items)
  }
}
const started = new StartedProcesses()
const children = new Set<ChildProcess>()
const warnings: string[] = []

function progress(line: string): void {
  process.stderr.write(progressColor ? `\x1b[2m${line}\x1b[0m\n` : `${line}\n`)
}

async function stage<T>(
  actor: Actor,
  name: string,
  fn: () => Promise<T>,
  describe?: (value: T) => string | undefined,
): Promise<T> {
  const startMs = now()
  progress(`… ${actor.padEnd(8)} ${name}`)
  const value = await fn()
  const s: Stage = { actor, name, startMs, durationMs: now() - startMs }
  const detail = describe?.(value)
  if (detail) s.detail = detail
  stages.push(s)
  progress(
    `✓ ${actor.padEnd(8)} ${name} (${s.durationMs.toFixed(0)} ms)${detail ? `: ${detail}` : ''}`,
  )
  return value
}

/**
 * The CLIs get PATH and HOME, plus what each call sets: the user's DIGICAP_* do not leak in,
 * except the log level (DIGICAP_LOG_LEVEL=debug shows every node's debug lines in logs/).
 */
function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const level = process.env.DIGICAP_LOG_LEVEL
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    ...(level ? { DIGICAP_LOG_LEVEL: level } : {}),
    ...extra,
  }
}

/** `<temp>/logs/<what>.{out,err}.log`: each process's stdout and stderr, written when it ends. */
function saveLogs(what: string, stdout: string, stderr: string): void {
  if (!tmp) return
  const dir = join(tmp, 'logs')
  const name = what.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '')
  try {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${name}.out.log`), stdout, { flag: 'a' })
    writeFileSync(join(dir, `${name}.err.log`), stderr, { flag: 'a' })
  } catch {
    // the temp folder is being removed
  }
}

/** Starts a CLI in its own process group so that stopping it stops everything it started. */
function spawnCli(bin: string, args: string[], env: Record<string, string>, what: string) {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', bin, ...args], {
    env: cliEnv(env),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid !== undefined) started.push({ pid: child.pid, what })
  children.add(child)
  const { stdout, stderr, exited: closed } = collectOutput(child)
  const exited = closed.then((code) => {
    children.delete(child)
    saveLogs(what, stdout(), stderr())
    return code
  })
  return { child, exited, stdout, stderr }
}

interface CliResult {
  code: number | null
  doc: Doc
  stderr: string
}

/** Runs a CLI command with `--json` to the end; the last stdout line is its document. */
async function cli(
  bin: string,
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<CliResult> {
  const p = spawnCli(bin, [...args, '--json'], env, what)
  const code = await p.exited
  const last = p.stdout().trim().split('\n').at(-1) ?? ''
  let doc: Doc
  try {
    doc = JSON.parse(last)
  } catch {
    throw new DemoError(`${what} printed no JSON (exit ${code})`, p.stderr())
  }
  return { code, doc, stderr: p.stderr() }
}

async function cliOk(
  bin: string,
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<Doc> {
  const r = await cli(bin, args, env, what)
  if (r.code !== 0 || r.doc.ok === false) {
    throw new DemoError(`${what} failed (exit ${r.code})`, r.stderr)
  }
  return r.doc
}

/** A daemon whose stdout is JSON lines; resolves with its first line once it is ready. */
interface Daemon {
  child: ChildProcess
  exited: Promise<number | null>
  lines(): Doc[]
  stderr(): string
  what: string
}

async function daemon(
  bin: string,
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<Daemon> {
  const p = spawnCli(bin, [...args, '--json'], env, what)
  const d: Daemon = {
    child: p.child,
    exited: p.exited,
    what,
    stderr: p.stderr,
    lines: () =>
      p
        .stdout()
        .split('\n')
        .filter((l) => l.trim().length > 0)
        .map((l) => JSON.parse(l) as Doc),
  }
  await until(() => p.stdout().includes('\n'), 30_000, `${what} to start`, p.exited, p.stderr)
  return d
}

class DemoError extends Error {
  override name = 'DemoError'
  readonly log: string
  constructor(message: string, log = '') {
    super(message)
    this.log = log
  }
}

async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  exited?: Promise<number | null>,
  log?: () => string,
): Promise<void> {
  let gone: number | null | undefined
  exited?.then((c) => {
    gone = c
  })
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (gone !== undefined)
      throw new DemoError(`gave up waiting for ${what}: the process exited (${gone})`, log?.())
    if (Date.now() > deadline) throw new DemoError(`timed out waiting for ${what}`, log?.())
    await new Promise((r) => setTimeout(r, 50))
  }
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), fsConstants.X_OK)
      return true
    } catch {
      // not here
    }
  }
  return false
}

// ------------------------------------------------------------------ shutdown

let anvil: Anvil | undefined
let tpm: Swtpm | undefined
let executorTpm: Swtpm | undefined
let tmp: string | undefined
let shutdown: Promise<void> | undefined
let receiverNode: ExecutorNode | undefined
let stopCommittee: (() => Promise<void>) | undefined
let interrupted = false

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const group = -child.pid
  try {
    process.kill(group, 'SIGTERM')
  } catch {
    return
  }
  const timer = setTimeout(() => {
    try {
      process.kill(group, 'SIGKILL')
    } catch {
      // already gone
    }
  }, 5000)
  await closed
  clearTimeout(timer)
}

function stopAll(): Promise<void> {
  shutdown ??= (async () => {
    await Promise.all([...[...children].map(stopChild), receiverNode?.stop(), stopCommittee?.()])
    await Promise.all([anvil?.stop(), tpm?.stop(), executorTpm?.stop()])
    if (tmp && !flags.keep) await rm(tmp, { recursive: true, force: true })
    reaper.release()
  })()
  return shutdown
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true
    progress(`\n${signal}: stopping every process the demo started…`)
    void stopAll().finally(() => process.exit(130))
  })
}

// ------------------------------------------------------------------ the flow

interface RunOutcome {
  path: string
  result: Doc
  receivedVia: string
  /** The executor that signed the result (verified against the grant on chain). */
  executor: string
  steps: Record<string, number>
  runId: string
}

async function main() {
  // The demo hosts a node itself (the receiver, in this process) and writes the logs and the
  // TPMs' state: like the CLIs' shell (ADR 0029), umask 077, so its whole folder is 0600/0700
  // whatever the caller's umask (test/demo.test.ts walks it). Its children inherit it.
  process.umask(0o077)
  tmp = await mkdtemp(join(tmpdir(), 'digicap-demo-'))
  if (!flags.keep) reaper.removeOnDeath(tmp)
  const dirs = {
    pi: join(tmp, 'pi-node'),
    executor: join(tmp, 'executor-node'),
    receiver: join(tmp, 'receiver'),
    tpm: join(tmp, 'swtpm'),
    executorTpm: join(tmp, 'swtpm-executor'),
  }
  const swtpmAvailable = onPath('swtpm') && onPath('tpm2_createprimary')
  // The executor's own TPM (a second swtpm): its attestation key, PCR 23 around every run.
  const attesting = swtpmAvailable
  const policy = attesting ? ATTESTED_POLICY : POLICY
  const useTpm = flags.sealer === 'tpm2' || (flags.sealer === undefined && swtpmAvailable)
  if (!useTpm) {
    const why = flags.sealer === 'software' ? '--sealer software' : 'swtpm/tpm2-tools not on PATH'
    const w = `INSECURE SEALER (${why}): the pi-node keeps its wrapping key in a file. Install swtpm and tpm2-tools to see the TPM path.`
    warnings.push(w)
    process.stderr.write(`\n${yellow(`WARNING: ${w}`)}\n\n`)
  }
  // chain and TPM
  ;[anvil, tpm, executorTpm] = await Promise.all([
    stage(
      'chain',
      'start anvil',
      () => startAnvil(),
      (a) => a.rpcUrl,
    ),
    useTpm
      ? stage(
          'pi-node',
          'start swtpm (the Pi TPM)',
          async () => {
            await mkdir(dirs.tpm, { recursive: true })
            return startSwtpm({ stateDir: dirs.tpm })
          },
          (t) => t.tcti,
        )
      : Promise.resolve(undefined),
    attesting
      ? stage(
          'executor',
          'start swtpm (the executor TPM: attestation key, PCR 23)',
          async () => {
            await mkdir(dirs.executorTpm, { recursive: true })
            return startSwtpm({ stateDir: dirs.executorTpm })
          },
          (t) => t.tcti,
        )
      : Promise.resolve(undefined),
  ])
  started.push({ pid: anvil.pid, what: 'anvil' })
  if (tpm) started.push({ pid: tpm.pid, what: 'swtpm' })
  if (executorTpm) started.push({ pid: executorTpm.pid, what: 'swtpm (executor)' })
  const rpc = anvil.rpcUrl
  const loopback = ['--listen', '/ip4/127.0.0.1/tcp/0']
  const piEnv = {
    DIGICAP_DATA_DIR: dirs.pi,
    DIGICAP_RPC_URL: rpc,
    ...(useTpm ? {} : { DIGICAP_SEALER: 'software', DIGICAP_ALLOW_INSECURE_SEALER: '1' }),
  }

  // The contracts: the `local` network of @digicap/contracts (anvil account 0 deploys first on a
  // fresh anvil, so the addresses are always LOCAL_NETWORK's, the ones an SDK program names).
  const contracts = await stage(
    'chain',
    'deploy the `local` network (anvil account 0)',
    // A short sortition window: the committee step's blocks come every 250 ms (ADR 0039).
    () => deployDigicap(anvil?.signers[0] as Wallet, { settlement: DEMO_SETTLEMENT }),
    (a) => `AccessController ${a.accessController}`,
  )
  if (contracts.accessController !== LOCAL_NETWORK.addresses.accessController) {
    throw new DemoError('the deployment is not at the `local` addresses (a changed deploy order?)')
  }
  const init = await stage(
    'pi-node',
    'init: owner keys in the TPM',
    () =>
      cliOk(
        PI_NODE,
        [
          'init',
          '--capsule-registry',
          contracts.capsuleRegistry,
          '--node-registry',
          contracts.nodeRegistry,
          '--access-controller',
          contracts.accessController,
          '--show-mnemonic-in-json',
          ...loopback,
          ...(tpm ? ['--tcti', tpm.tcti] : ['--sealer', 'software', '--allow-insecure-sealer']),
        ],
        piEnv,
        'pi-node init',
      ),
    (d) => `owner ${d.owner.address}, sealer ${d.sealer.kind}`,
  )
  // Dev ETH for the owner (policy, registration) and its keyguard operator (fast-path audit
  // records); `serve` approves the operator once the owner can pay for it.
  await stage('chain', 'fund the owner and its keyguard operator', () =>
    Promise.all(
      [init.owner.address, init.operator?.address]
        .filter((a): a is string => typeof a === 'string')
        .map((a) => anvil?.provider.send('anvil_setBalance', [a, '0x56bc75e2d63100000'])),
    ),
  )
  const contractFlags = [
    '--rpc-url',
    rpc,
    '--capsule-registry',
    contracts.capsuleRegistry,
    '--node-registry',
    contracts.nodeRegistry,
    '--access-controller',
    contracts.accessController,
    ...loopback,
  ]
  const [executor, receiverInit] = await Promise.all([
    stage(
      'executor',
      'init: wallet, libp2p id',
      () =>
        cliOk(
          EXECUTOR_NODE,
          [
            'init',
            '--data-dir',
            dirs.executor,
            ...contractFlags,
            ...(executorTpm ? ['--tcti', executorTpm.tcti] : []),
          ],
          {},
          'executor-node init',
        ),
      (d) => `address ${d.address}${executorTpm ? ', attestation key on its swtpm' : ''}`,
    ),
    stage(
      'receiver',
      'init: X25519 result key',
      () =>
        cliOk(
          EXECUTOR_NODE,
          ['init', '--data-dir', dirs.receiver, ...contractFlags],
          {},
          'receiver init',
        ),
      (d) => `key ${String(d.receiverPublicKey).slice(0, 18)}…`,
    ),
  ])

  const funder = anvil.signers[1] as Wallet
  const c = connectDigicap(contracts, funder)
  // The executor stakes while the pi-node and the receiver start their daemons.
  const [reputation, serve, recv] = await Promise.all([
    (async () => {
      await stage('chain', 'fund the executor (1 ETH)', async () =>
        (await funder.sendTransaction({ to: executor.address, value: parseEther('1') })).wait(),
      )
      return stage(
        'executor',
        `register --stake ${STAKE_ETH} ETH`,
        async () => {
          await cliOk(
            EXECUTOR_NODE,
            ['register', '--stake', STAKE_ETH, '--data-dir', dirs.executor],
            {},
            'executor-node register',
          )
          return c.nodeRegistry.reputationOf(executor.address)
        },
        (r) =>
          `reputation ${r} (policy needs ≥ ${MIN_REPUTATION})${attesting ? ', attestation record hash registered' : ''}`,
      )
    })(),
    stage(
      'pi-node',
      'serve: helia + keyguard',
      () =>
        daemon(
          PI_NODE,
          // The ops port (loopback, a free port): /metrics, /healthz and the status page; the
          // demo's sealer (swtpm or the software key file) accepted on purpose by /healthz.
          ['serve', '--status-interval-ms', '500', '--ops-port', '0', '--allow-software-sealer'],
          piEnv,
          'pi-node serve',
        ),
      (d) => {
        const ready = d.lines()[0] ?? {}
        return `peer ${String(ready.peerId).slice(0, 16)}…, sealer ${ready.keyguard?.sealer?.kind}`
      },
    ),
    stage(
      'receiver',
      'listen for results (libp2p, X25519 key)',
      async () => {
        const node = await createExecutorNode(
          dirs.receiver,
          {},
          { listen: ['/ip4/127.0.0.1/tcp/0'], executor: false },
        )
        receiverNode = node
        const inbox = node.receiver((await readSecrets(node.config)).receiverKey)
        await inbox.start()
        return { node, inbox }
      },
      (r) => `peer ${r.node.peerId.slice(0, 16)}…`,
    ),
  ])
  if (reputation < MIN_REPUTATION) {
    throw new DemoError(
      `the registered executor has reputation ${reputation}, below the policy's ${MIN_REPUTATION}`,
    )
  }
  const serveDoc = serve.lines()[0] as Doc
  if (serveDoc.ok === false) throw new DemoError('pi-node serve failed', serve.stderr())
  const keyguardAddr = (serveDoc.multiaddrs as string[])[0] as string
  const opsUrl = serveDoc.ops?.url as string
  // No token in a link: `pi-node status` asks the daemon for a one-time login link.
  const ops = {
    statusPage: `${opsUrl}/status`,
    statusLogin: `pi-node status --data-dir ${dirs.pi}`,
    metrics: `${opsUrl}/metrics`,
    healthz: `${opsUrl}/healthz`,
  }
  progress(`  pi-node status page ${ops.statusPage} (log in: ${ops.statusLogin})`)
  progress(`  pi-node metrics     ${ops.metrics} (health: ${ops.healthz})`)
  const receiverAddr = recv.node.node.multiaddrs()[0] as string
  // The daemon's own description of its sealer says what is weak about it (a software key
  // file, or a TPM that is the swtpm emulator): reported as it is, never guessed from stderr.
  const sealerWarning = serveDoc.keyguard?.sealer?.warning
  if (typeof sealerWarning === 'string') warnings.push(`pi-node serve: ${sealerWarning}`)

  const sealed = await stage(
    'pi-node',
    'seal: salaries.csv + QuickJS aggregate',
    () =>
      cliOk(
        PI_NODE,
        [
          'seal',
          DATASET,
          '--policy',
          policy,
          '--runtime',
          'quickjs',
          '--entry',
          'main.js',
          '--code',
          PROGRAM,
          '--receiver',
          `${receiverInit.receiverPublicKey}@${recv.node.peerId}`,
        ],
        piEnv,
        'pi-node seal',
      ),
    (d) => `${d.cid}, policy ${policy}, announced ${d.announced?.ok ? 'yes' : 'no'}`,
  )

  // the image capsule step (image-step.ts): its seal-image overlaps the data capsule's runs
  // what both steps below get from the demo (step-context.ts)
  const steps: StepContext = {
    stage,
    record: (st) => stages.push(st),
    cli,
    cliOk,
    daemon,
    stopChild,
    started: (pid, what) => started.push({ pid, what }),
    now,
    progress: (line) => progress(`${line} (+${now().toFixed(0)} ms)`),
    until,
    warn: (w) => warnings.push(w),
    piNode: PI_NODE,
    executorNode: EXECUTOR_NODE,
    csv: DATASET,
  }
  const imageRun = imageStep({
    ...steps,
    piEnv,
    executorArgs: ['--data-dir', dirs.executor, '--keyguard-addr', keyguardAddr],
    runEnv: { DIGICAP_BOOTSTRAP: receiverAddr },
    policyTerms: [`minReputation(${MIN_REPUTATION})`, ...(attesting ? ['attested()'] : [])],
    receiver: {
      publicKey: receiverInit.receiverPublicKey,
      peerId: recv.node.peerId,
      next: (ms) => recv.inbox.next(ms),
    },
    runCount: (id) => c.accessController.runCount(id),
  })

  // the committee step (committee-step.ts): prepared while the data capsule runs, run last
  const committeeRun = attesting
    ? committeeStep({
        ...steps,
        executorDataDir: dirs.executor,
        dir: tmp as string,
        program: PROGRAM,
        rpcUrl: rpc,
        contracts,
        accounts: [5, 6, 7, 8, 9].map((i) => anvil?.signers[i] as Wallet),
        provider: anvil.provider,
        executor: executor.address as string,
      })
    : undefined
  stopCommittee = committeeRun?.stop

  const runArgs = [
    'run',
    sealed.cid as string,
    '--data-dir',
    dirs.executor,
    '--keyguard-addr',
    keyguardAddr,
  ]
  const runEnv = { DIGICAP_BOOTSTRAP: receiverAddr }

  const registeredHash = attesting
    ? getBytes((await c.nodeRegistry.getNode(executor.address)).attestationKeyHash)
    : undefined
  const grantsSeen = new Set<string>()

  /** The next grant of this capsule on chain (chain path: its AccessGranted event). */
  async function nextGrant(stop: Promise<unknown>): Promise<WatchedRun> {
    let stopped = false
    stop.then(
      () => {
        stopped = true
      },
      () => {
        stopped = true
      },
    )
    const filter = c.accessController.filters.AccessGranted!(null, sealed.capsuleId)
    while (!stopped) {
      for (const log of await c.accessController.queryFilter(filter)) {
        const a = (log as unknown as { args: Doc }).args
        if (grantsSeen.has(a.grantId)) continue
        grantsSeen.add(a.grantId)
        return {
          grantId: getBytes(a.grantId),
          ephemeralKey: getBytes(a.ephemeralKey),
          measurement: getBytes(a.measurement),
        }
      }
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new DemoError('the run ended before its grant was seen on chain')
  }

  async function runAndReceive(path: 'chain' | 'fast'): Promise<RunOutcome> {
    const arrival = recv.inbox.next(120_000).then((got) => ({ got, at: now() }))
    arrival.catch(() => {})
    let watch: Promise<AttestationWatch> | undefined
    const r = await stage(
      'executor',
      `run (${path} path): fetch → grant → release → sandbox → deliver`,
      () => {
        const watching = registeredHash !== undefined && path === 'chain'
        const ran = cliOk(
          EXECUTOR_NODE,
          [...runArgs, ...(path === 'fast' ? ['--fast', '--no-fallback'] : [])],
          // Watched: the run holds each phase until the verifier below quoted it (at most 20 s),
          // so before, during and after are each seen however slow the box is.
          watching ? { ...runEnv, DIGICAP_ATTEST_HOLD_MS: '20000' } : runEnv,
          `executor-node run (${path})`,
        )
        if (registeredHash && watching) {
          // The receiver's node is connected to the executor (its bootstrap peer): the demo
          // challenges the executor's TPM through it while the run goes on.
          watch = watchAttestation({
            libp2p: recv.node.node.libp2p,
            peer: executor.peerId as string,
            registeredHash,
            run: nextGrant(ran),
            done: ran,
          })
          watch.catch(() => {})
        }
        return ran
      },
      (d) => `${d.path} path, ${d.resultBytes} bytes out, ${d.deliveries.length} delivery(ies)`,
    )
    // The executor-node process's own start-up (Node, modules, libp2p node) is a stage too.
    const steps: Record<string, number> = { start: Math.round(r.startup.ms * 10) / 10 }
    for (const [k, v] of Object.entries(r.timings as Record<string, number>)) {
      steps[k] = Math.round(v * 10) / 10
    }
    ;(stages.at(-1) as Stage).steps = steps
    if (watch) {
      const w = await watch
      const runStage = stages.at(-1) as Stage
      attestation = { quotes: w.quotes, phases: w.phases }
      stages.push({
        actor: 'receiver',
        name: `verifier: ${w.quotes} quotes of the executor's TPM during the ${path} run`,
        startMs: runStage.startMs,
        durationMs: runStage.durationMs,
        detail: w.phases
          .map((ph) => `${ph.phase} ${ph.verdict}${ph.atMs === undefined ? '' : ` @${ph.atMs} ms`}`)
          .join(' · '),
      })
      progress(
        `✓ receiver verifier: ${w.phases.map((ph) => `${ph.phase} ${ph.verdict}`).join(', ')}`,
      )
    }
    const { got, at } = await arrival
    if (got.runId !== r.runId) {
      throw new DemoError(`the receiver got run ${got.runId}, expected ${r.runId}`)
    }
    const text = new TextDecoder().decode(got.output)
    stages.push({
      actor: 'receiver',
      name: `result of the ${path} run, signature checked, HPKE-opened`,
      startMs: at,
      durationMs: 0,
      detail: `${got.output.byteLength} bytes signed by executor ${got.executor.slice(0, 10)}… (grant's executor on chain), via ${got.via}`,
    })
    progress(
      `✓ receiver result of the ${path} run (${got.output.byteLength} bytes, via ${got.via})`,
    )
    return {
      path: r.path,
      runId: r.runId,
      result: JSON.parse(text),
      receivedVia: got.via,
      executor: got.executor,
      steps,
    }
  }

  let attestation: { quotes: number; phases: AttestationWatch['phases'] } | undefined
  const chainRun = await runAndReceive('chain')
  const fastRun = await runAndReceive('fast')

  await stage(
    'chain',
    'runs counted on chain (fast-path audit record)',
    () =>
      until(
        async () => (await c.accessController.runCount(sealed.capsuleId)) >= 2n,
        20_000,
        'the fast-path audit record',
      ),
    () => 'runCount = 2 of maxRuns(2)',
  )

  const refused = await stage(
    'executor',
    'run #3 (fast path): the policy refuses',
    async () => {
      const r = await cli(
        EXECUTOR_NODE,
        [...runArgs, '--fast', '--no-fallback'],
        runEnv,
        'executor-node run (refused)',
      )
      if (r.code === 0)
        throw new DemoError('the third run was granted; maxRuns(2) should refuse it')
      const errorLine = r.stderr.split('\n').find((l) => l.startsWith('error[')) ?? ''
      const e = r.doc.error as Doc
      return {
        code: String(e.code),
        message: String(e.message),
        reason: String(e.details?.reason),
        path: String(e.details?.path),
        line: errorLine,
      }
    },
    (e) => e.line,
  )

  const image = await imageRun.run()
  const committee: CommitteeOutcome = committeeRun
    ? await committeeRun.run()
    : { skipped: 'no swtpm for the executor (attested() needs one)' }
  await stopCommittee?.()

  if (flags.keep) {
    // The nodes stay up (status page, metrics) until Ctrl-C; the signal handler stops them.
    return { ...outcome(), ops, exits: { serve: null } }
  }
  const [serveExit] = await Promise.all([
    stage(
      'pi-node',
      'stop serve (SIGTERM)',
      async () => {
        await stopChild(serve.child)
        return serve.exited
      },
      (code) => `exit ${code}`,
    ),
    stage('receiver', 'stop', async () => {
      await recv.inbox.stop()
      await recv.node.stop()
      receiverNode = undefined
    }),
  ])
  await Promise.all([
    stage('chain', 'stop anvil', async () => anvil?.stop()),
    tpm ? stage('pi-node', 'stop swtpm', async () => tpm?.stop()) : undefined,
    executorTpm
      ? stage('executor', 'stop swtpm (executor)', async () => executorTpm?.stop())
      : undefined,
  ])
  await stopAll()
  return { ...outcome(), ops, exits: { serve: serveExit } }

  function outcome() {
    return {
      sealer: {
        kind: init.sealer.kind as string,
        swtpm: tpm !== undefined,
        swtpmAvailable,
        hardwareBacked: Boolean(init.sealer.hardwareBacked),
      },
      policy,
      attestation: attesting
        ? {
            // hkg's keyguard gate: attested() releases only after the executor's before-quote
            // (its AK activated against its EK once, PCR 23 reset, this grant and key) passed.
            releasedAfterBeforeQuote: true,
            verifier: attestation,
          }
        : { releasedAfterBeforeQuote: false, verifier: undefined },
      capsule: { capsuleId: sealed.capsuleId as string, cid: sealed.cid as string },
      image,
      committee,
      executor: { address: executor.address as string, reputation: Number(reputation) },
      runs: { chain: chainRun, fast: fastRun },
      refusal: {
        code: refused.code,
        reason: refused.reason,
        path: refused.path,
        message: refused.message,
      },
    }
  }
}

// ------------------------------------------------------------------ output

function ms(n: number): string {
  return `${n.toFixed(0).padStart(6)} ms`
}

function printTimeline(): void {
  const out: string[] = []
  out.push(bold('Timeline') + dim('  (start offset, duration; per actor)'))
  for (const actor of ACTORS) {
    const mine = stages.filter((s) => s.actor === actor).sort((a, b) => a.startMs - b.startMs)
    if (mine.length === 0) continue
    out.push('', bold(actor))
    for (const s of mine) {
      out.push(
        `  +${ms(s.startMs)}  ${ms(s.durationMs)}  ${s.name}${s.detail ? dim(`  ${s.detail}`) : ''}`,
      )
      if (s.steps) {
        const parts = Object.entries(s.steps).map(([k, v]) => `${k} ${v.toFixed(0)}`)
        out.push(dim(`  ${' '.repeat(22)}  ↳ ${parts.join(' · ')} ms`))
      }
    }
  }
  process.stdout.write(`${out.join('\n')}\n`)
}

function printResult(label: string, run: RunOutcome): void {
  const stats = run.result.stats as Record<
    string,
    { count: number; mean: number; median: number; min: number; max: number }
  >
  const lines = [
    `${bold(label)} ${dim(`(run ${run.runId.slice(0, 10)}…, signed by ${run.executor.slice(0, 10)}…, via ${run.receivedVia})`)}`,
  ]
  lines.push(
    `  ${'column'.padEnd(12)} ${'count'.padStart(5)} ${'mean'.padStart(10)} ${'median'.padStart(9)} ${'min'.padStart(8)} ${'max'.padStart(8)}`,
  )
  for (const [col, s] of Object.entries(stats)) {
    lines.push(
      `  ${col.padEnd(12)} ${String(s.count).padStart(5)} ${String(s.mean).padStart(10)} ${String(s.median).padStart(9)} ${String(s.min).padStart(8)} ${String(s.max).padStart(8)}`,
    )
  }
  process.stdout.write(`${lines.join('\n')}\n`)
}

function printCommittee(c: CommitteeOutcome): void {
  if (c.skipped || !c.honest || !c.tampered) {
    process.stdout.write(`${bold('Committee:')} ${yellow(`skipped (${c.skipped})`)}\n\n`)
    return
  }
  const eth = (wei: string) => `${(Number(wei) / 1e18).toFixed(4)} ETH`
  const h = c.honest
  const t = c.tampered
  const gained = BigInt(h.credits.after) - BigInt(h.credits.before)
  const slashed = BigInt(t.stake.before) - BigInt(t.stake.after)
  process.stdout.write(
    `${bold('Committee of 4 verifiers')} ${dim(`(sortition window ${c.sortitionWindow} blocks, ${((c.ms ?? 0) / 1000).toFixed(1)} s)`)}\n` +
      `  honest run   ${h.grantId.slice(0, 10)}…: before ${h.job.before === 1 ? green('pass') : red('fail')}, key ${h.release.state === 'completed' ? green('released') : red(h.release.state)}, final verdict ${h.job.verdict === 7 ? green('7 (pass)') : red(String(h.job.verdict))}, settled; ` +
      `executor +${eth(String(gained))}, reputation ${h.reputation.before} → ${h.reputation.after}\n` +
      `  signers      ${c.members?.map((m) => `${m.address.slice(0, 8)}… rep ${m.reputation.before} → ${m.reputation.after}, credit ${eth(m.credits)}`).join('; ')}\n` +
      `  tampered     ${t.grantId.slice(0, 10)}…: before ${t.job.before === 2 ? red('FAIL') : String(t.job.before)} (${t.phases[0]?.map((p) => `${p.phase} ${p.verdict}`).join(', ')}), key ${t.release.state === 'refused' ? green('NOT released') : red(t.release.state)}${t.release.reason ? dim(` (${t.release.reason})`) : ''}, ` +
      `executor slashed ${red(eth(String(slashed)))}, reputation ${t.reputation.before} → ${t.reputation.after}\n\n`,
  )
}

let exitCode = 0
try {
  const r = await main()
  const totalMs = Math.round(now())
  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          ok: true,
          ...r,
          totalMs,
          timeline: stages.map((s) => ({
            ...s,
            startMs: Math.round(s.startMs),
            durationMs: Math.round(s.durationMs),
          })),
          warnings,
          pids: started,
          tempDir: tmp,
          kept: flags.keep === true,
        },
        null,
        2,
      )}\n`,
    )
  } else {
    process.stdout.write('\n')
    printTimeline()
    process.stdout.write('\n')
    printResult(
      `Result the receiver decrypted — chain path (aggregate over ${r.runs.chain.result.rows} private rows):`,
      r.runs.chain,
    )
    const same = JSON.stringify(r.runs.chain.result) === JSON.stringify(r.runs.fast.result)
    process.stdout.write(
      `${bold('Result — fast path:')} ${same ? green('identical') : red('DIFFERENT')} ${dim(`(run ${r.runs.fast.runId.slice(0, 10)}…, via ${r.runs.fast.receivedVia})`)}\n\n`,
    )
    process.stdout.write(
      `${bold('Refused at the executor:')} ${red(`error[${r.refusal.code}]`)} ${r.refusal.message} ${dim(`(path ${r.refusal.path})`)}\n\n`,
    )
    const v = r.attestation.verifier
    if (v) {
      process.stdout.write(
        `${bold('Attestation:')} attested() in the policy — the keyguard released each key only after the executor's before-quote passed its check (AK activated against the EK once, PCR 23 at reset, bound to the grant and key).\n` +
          `  The demo as a verifier, ${v.quotes} quotes during the chain run: ${v.phases
            .map(
              (ph) =>
                `${ph.phase} ${ph.verdict === 'verified' ? green('verified') : ph.verdict === 'missed' ? yellow('missed (window passed between quotes)') : red(ph.verdict)}`,
            )
            .join(', ')}\n\n`,
      )
    }
    printCommittee(r.committee)
    process.stdout.write(
      `sealer ${r.sealer.kind}${r.sealer.swtpm ? ' on swtpm' : yellow(' (INSECURE: software key file)')}, policy ${r.policy}, ` +
        `executor reputation ${r.executor.reputation}\n` +
        (flags.keep
          ? `${green('done')} in ${(totalMs / 1000).toFixed(1)} s; the nodes keep running, data in ${tmp}\n` +
            `  pi-node status page ${r.ops.statusPage} (log in: ${r.ops.statusLogin})\n  pi-node metrics     ${r.ops.metrics}\n`
          : `${green('done')} in ${(totalMs / 1000).toFixed(1)} s; every process stopped, temp folders removed.\n`),
    )
  }
  if (flags.keep) {
    progress('--keep: the nodes, the status page and the metrics stay up; Ctrl-C stops them.')
    await new Promise(() => {}) // the signal handler stops everything and exits
  }
} catch (err) {
  exitCode = 1
  if (interrupted) await new Promise(() => {}) // the signal handler exits once all is stopped
  const e = err as Error
  process.stderr.write(`\n${red('demo failed:')} ${e.message}\n`)
  if (err instanceof DemoError && err.log) {
    process.stderr.write(`${dim('--- log of the failing step ---')}\n${err.log.slice(-4000)}\n`)
  } else if (e.stack) {
    process.stderr.write(`${e.stack}\n`)
  }
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: e.message, timeline: stages, pids: started, tempDir: tmp })}\n`,
    )
  }
} finally {
  await stopAll()
}
process.exit(exitCode)
