/** The `pi-node` command line: parses flags, builds a pi-node, runs one command, prints. */
import { parseArgs } from 'node:util'
import type { Receiver, RuntimeKind } from '@digicap/capsule-core'
import {
  EXIT,
  type Io,
  jsonReplacer,
  printError,
  printVersion,
  progressReporter,
  VERSION_FLAGS,
  warnOnce,
} from '@digicap/cli-kit'
import type { KeyguardStatus, Logger } from '@digicap/keyguard'
import {
  DEFAULT_LISTEN,
  DEFAULT_TCTI,
  loadConfig,
  piNodePaths,
  resolveDataDir,
  type SealerConfig,
} from './config.ts'
import { UsageError } from './errors.ts'
import type { OperatorStatus } from './pi-node.ts'

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string }

const GLOBAL: Record<string, OptionSpec> = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const SEALER_OPTIONS: Record<string, OptionSpec> = {
  sealer: { type: 'string' },
  tcti: { type: 'string' },
  'allow-insecure-sealer': { type: 'boolean' },
}

const COMMANDS: Record<string, { options: Record<string, OptionSpec>; usage: string }> = {
  init: {
    options: {
      ...SEALER_OPTIONS,
      'rpc-url': { type: 'string' },
      'chain-id': { type: 'string' },
      deploy: { type: 'boolean' },
      'capsule-registry': { type: 'string' },
      'node-registry': { type: 'string' },
      'access-controller': { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      'extra-rpc-url': { type: 'string', multiple: true },
      quorum: { type: 'string' },
      confirmations: { type: 'string' },
      'disable-fast-path': { type: 'boolean' },
      force: { type: 'boolean' },
      'show-mnemonic-in-json': { type: 'boolean' },
    },
    usage: `pi-node init [options]

Creates the TPM wrapping key, the owner (24-word mnemonic, Ethereum account, recovery key,
libp2p identity) and <data-dir>/config.json. The mnemonic is shown ONCE on stderr.

Options:
  --rpc-url <url>              chain RPC (env DIGICAP_RPC_URL; default http://127.0.0.1:8545)
  --chain-id <n>               expected chain id (default: asked from the RPC)
  --deploy                     deploy the Digicap contracts (dev chain: funds the owner and the
                               keyguard operator with anvil_setBalance)
  --capsule-registry <addr>    existing contracts (instead of --deploy), with
  --node-registry <addr>       --node-registry and
  --access-controller <addr>   --access-controller
  --sealer tpm2|software       (env DIGICAP_SEALER; default tpm2)
  --tcti <tcti>                TPM (env DIGICAP_TCTI; default ${DEFAULT_TCTI})
  --allow-insecure-sealer      required for --sealer software (env DIGICAP_ALLOW_INSECURE_SEALER=1)
  --listen <multiaddr>         serve's listen address, repeatable (default ${DEFAULT_LISTEN.join(',')})
  --announce <multiaddr>       public address serve advertises (NAT/port forward), repeatable
  --bootstrap <multiaddr>      peer to dial at start, repeatable
  --extra-rpc-url <url>        another RPC of the same chain for the keyguard's quorum, repeatable
  --quorum <n>                 RPCs that must agree on a grant (default: majority)
  --confirmations <n>          blocks a grant must be buried under (default 0 on 31337/1337, else 3)
  --disable-fast-path          do not answer signed AccessRequests over libp2p (chain path only)
  --force                      move an existing node's config and owner file aside
  --show-mnemonic-in-json      with --json: put the mnemonic in the JSON document instead of stderr
`,
  },
  seal: {
    options: {
      policy: { type: 'string' },
      runtime: { type: 'string' },
      entry: { type: 'string' },
      code: { type: 'string' },
      receiver: { type: 'string', multiple: true },
      'memory-mb': { type: 'string' },
      'time-ms': { type: 'string' },
      'announce-timeout-ms': { type: 'string' },
    },
    usage: `pi-node seal <file> --policy '<expr>' [options]

Seals <file> into a capsule: data key -> header signed by the owner -> encrypted stream
-> data key wrapped to the TPM and the recovery key -> policy contract deployed -> added
to the on-disk IPFS blockstore -> registered on chain -> announced (if serve is running).

Options:
  --policy '<expr>'            unlock rule (policy builder expression), see below
  --runtime data|quickjs|wasi  (default data)
  --entry <name> --code <path> code capsules: the plaintext is the executor bundle
                               {entry, files, data = <file>}; --code is one file (stored as
                               <name>) or a folder (every file by relative path)
  --receiver <x25519hex>[@peerId]  result receiver, repeatable
  --memory-mb <n>              sandbox memory limit
  --time-ms <n>                sandbox time limit
  --announce-timeout-ms <n>    wait for a gossipsub subscriber (default 5000)

Policy expressions (conditions minReputation(n), allowlist(['0x..', ...]), denylist([...]),
environment('0x<64 hex>'), after(date), before(date), maxRuns(n), fee('0.01'), combined with
all(...), any(...), not(x); hex and dates are quoted; dates ISO 8601 with Z or unix seconds):
  --policy 'maxRuns(3)'                                   at most 3 grants
  --policy 'all(minReputation(50), maxRuns(3))'           reputable executors, 3 runs
  --policy "all(environment('0x<64 hex>'), before('2027-01-01T00:00:00Z'), fee('0.01'))"
  --policy "any(allowlist(['0x<40 hex>', '0x<40 hex>']), minReputation(500))"
  --policy "all(not(denylist(['0x<40 hex>'])), maxRuns(10))"
  (the @digicap/contracts README has the full grammar)

Examples:
  pi-node seal photo.jpg --policy 'maxRuns(1)'
  pi-node seal data.csv --policy 'minReputation(50)' --runtime quickjs --entry main.js --code ./app
`,
  },
  status: {
    options: {},
    usage: `pi-node status [--json]

Shows the config, the sealer (with any insecurity warning), owner address, peer id,
chain reachability and head block, contract addresses, stored capsules and the daemon.
`,
  },
  recover: {
    options: {
      ...SEALER_OPTIONS,
      'rpc-url': { type: 'string' },
      'chain-id': { type: 'string' },
      'capsule-registry': { type: 'string' },
      'node-registry': { type: 'string' },
      'access-controller': { type: 'string' },
      peer: { type: 'string', multiple: true },
      'start-block': { type: 'string' },
      'fetch-timeout-ms': { type: 'string' },
      listen: { type: 'string', multiple: true },
    },
    usage: `pi-node recover [options] < words.txt

Reads the 24-word mnemonic from stdin (never from the command line) and brings the owner
back onto a new TPM, or onto a new Pi with an empty data folder: writes the config and the
owner file again, re-wraps the keys still stored here, then rebuilds every key of the
owner's capsules from the chain (CapsuleRegistered logs) and IPFS (the header's recovery
copy), points the chain's keyguard record at the new TPM key (updateKeyguard) and pins the
capsules. Safe to run again after a crash. Capsules that cannot be recovered are listed
with a reason (exit code 1); the others are recovered.

Options:
  --tcti <tcti>                the new TPM (saved to the config)
  --sealer tpm2|software       switch sealer kind (saved to the config)
  --allow-insecure-sealer      required for --sealer software
  --peer <multiaddr>           a peer serving the capsules' blocks (an executor, a pinning
                               node), with /p2p/<peerId>; repeatable, saved as bootstrap
  --start-block <n>            first block to scan for the owner's capsules (default: the
                               config's, else 0)
  --fetch-timeout-ms <ms>      per-capsule fetch timeout (default 60000)
New Pi (no config in the data folder):
  --rpc-url <url>              chain RPC (or DIGICAP_RPC_URL)
  --chain-id <id>              expected chain id
  --capsule-registry <addr>    the contracts, as given to init
  --node-registry <addr>
  --access-controller <addr>
  --listen <multiaddr>         saved in the new config (default /ip4/0.0.0.0/tcp/4001)
`,
  },
  serve: {
    options: {
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      confirmations: { type: 'string' },
      'disable-fast-path': { type: 'boolean' },
      'status-interval-ms': { type: 'string' },
    },
    usage: `pi-node serve [options] [--json]

Runs the daemon on one libp2p node with the owner's identity:
  - helia: provides the on-disk blockstore over bitswap, pins stored capsules, hears
    capsule announcements;
  - the keyguard: watches AccessGranted on the AccessController (confirmations deep),
    pushes each grant's data key HPKE-sealed to the executor's registered peer id,
    journals releases (<data-dir>/keyguard/journal) and re-serves unfinished ones on
    start; answers signed AccessRequests on the fast path (unless disabled).
Writes <data-dir>/serve.json (pid, peer id, addresses, keyguard status), refreshed
every few seconds and after each keyguard event; \`pi-node status\` reads it.
SIGINT/SIGTERM stop it cleanly. With --json, prints one ready document.

Options:
  --listen <multiaddr>         listen address, repeatable (env DIGICAP_LISTEN; default from config)
  --announce <multiaddr>       public address to advertise, repeatable (env DIGICAP_ANNOUNCE)
  --confirmations <n>          override keyguard.confirmations (env DIGICAP_CONFIRMATIONS)
  --disable-fast-path          serve the chain path only
  --status-interval-ms <n>     serve.json refresh period (default 5000)
`,
  },
}

const TOP_USAGE = `pi-node — the Digicap capsule owner's node

Usage: pi-node <command> [options]

Commands:
  init      create the owner, TPM key and config
  seal      seal a file into a capsule, register and announce it
  status    show the node's state
  recover   restore keys onto a new TPM from the paper mnemonic (stdin)
  serve     run the daemon

Global options:
  --data-dir <dir>   data folder (env DIGICAP_DATA_DIR; default ~/.digicap/pi-node)
  --json             one JSON document on stdout; progress and logs on stderr
  -h, --help         help for a command
  -V, --version      this program's version and the Node running it
`

function operatorLine(o: OperatorStatus): string {
  if (o.address === undefined) return 'none (version-1 owner file: audits use the owner account)'
  const approval =
    o.approved === undefined ? 'approval unknown' : o.approved ? 'approved' : 'NOT approved'
  const balance = o.balanceWei === undefined ? '' : `, balance ${o.balanceWei} wei`
  return `${o.address} (${approval}${balance})`
}

function stderrLogger(io: Io): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>) =>
    io.stderr.write(`${JSON.stringify({ level, message, ...fields }, jsonReplacer)}\n`)
  return {
    info: (m, f) => write('info', m, f),
    // A sealer's insecurity warning (built, started, described) is one line per command.
    warn: (m, f) => (m.startsWith('INSECURE') ? warnOnce(io, m) : write('warn', m, f)),
  }
}

function wholeNumber(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new UsageError(`--${flag} must be a whole number`, { details: { value: v } })
  }
  return Number(v)
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) <= 0) {
    throw new UsageError(`--${flag} must be a positive integer`, { details: { value: v } })
  }
  return Number(v)
}

function sealerFromFlags(
  values: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  dataDir: string,
  fallback?: SealerConfig,
): SealerConfig | undefined {
  const kind = (values.sealer as string | undefined) ?? (fallback ? undefined : env.DIGICAP_SEALER)
  const tcti = (values.tcti as string | undefined) ?? (fallback ? undefined : env.DIGICAP_TCTI)
  const allow =
    values['allow-insecure-sealer'] === true || env.DIGICAP_ALLOW_INSECURE_SEALER === '1'
  if (kind === undefined && tcti === undefined && fallback) return undefined
  const k = kind ?? fallback?.kind ?? 'tpm2'
  if (k === 'tpm2') {
    return {
      kind: 'tpm2',
      tcti: tcti ?? (fallback?.kind === 'tpm2' ? fallback.tcti : DEFAULT_TCTI),
    }
  }
  if (k === 'software') {
    if (!allow) {
      throw new UsageError(
        'The software sealer keeps its key in a file and is refused by default',
        {
          hint: 'Use a TPM, or pass --allow-insecure-sealer if you accept the risk (tests, demos).',
        },
      )
    }
    return { kind: 'software', keyFile: piNodePaths(dataDir).softwareKey, allowInsecure: true }
  }
  throw new UsageError('--sealer must be tpm2 or software', { details: { value: k } })
}

function parseReceiver(text: string): Receiver {
  const [key, peerId, ...rest] = text.split('@')
  if (rest.length > 0 || !key || !/^(0x)?[0-9a-fA-F]{64}$/.test(key)) {
    throw new UsageError('--receiver must be <x25519 public key hex>[@peerId]', {
      details: { value: text.slice(0, 100) },
    })
  }
  return {
    publicKey: Uint8Array.from(Buffer.from(key.replace(/^0x/, ''), 'hex')),
    ...(peerId ? { peerId } : {}),
  }
}

async function readStdin(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  const parts: Buffer[] = []
  for await (const c of stdin) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(parts).toString('utf8').trim()
}

function keyguardLines(kg: KeyguardStatus, updatedAt?: string): string {
  return (
    `  keyguard    ${kg.running ? 'running' : 'stopped'}, chain ${kg.chain.chainId} head ${kg.chain.head ?? '?'} cursor ${kg.chain.cursor?.number ?? '-'} (${kg.chain.confirmations} confirmations)` +
    `${updatedAt ? `, as of ${updatedAt}` : ''}\n` +
    `              releases pending ${kg.releases.pending}, in flight ${kg.releases.inFlight}; released ${kg.counters.released ?? 0}, failed ${kg.counters['release-failed'] ?? 0}\n` +
    `              fast path ${kg.fastPath.enabled ? `on (audit pending ${kg.fastPath.auditPending})` : 'off'}\n`
  )
}

export interface CliIo extends Io {
  stdin: AsyncIterable<Buffer | string>
  env: NodeJS.ProcessEnv
  /** Resolves when the daemon should stop (SIGINT/SIGTERM in the real CLI); called by `serve` only. */
  waitForStop?: () => Promise<string>
}

/**
 * Runs one `pi-node` command. Returns the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env })
 * ```
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const json = argv.includes('--json')
  try {
    const command = argv[0]
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout.write(TOP_USAGE)
      return command === undefined ? EXIT.usage : EXIT.ok
    }
    if (VERSION_FLAGS.includes(command)) {
      return printVersion(io, 'pi-node', new URL('../package.json', import.meta.url), json)
    }
    const spec = COMMANDS[command]
    if (!spec) {
      throw new UsageError('Unknown command', {
        details: { command },
        hint: 'Commands: init, seal, status, recover, serve (pi-node --help).',
      })
    }
    let parsed: ReturnType<typeof parseArgs>
    try {
      parsed = parseArgs({
        args: argv.slice(1),
        options: { ...GLOBAL, ...spec.options },
        allowPositionals: true,
        strict: true,
      })
    } catch (cause) {
      throw new UsageError((cause as Error).message, {
        hint: `See pi-node ${command} --help.`,
      })
    }
    const values = parsed.values as Record<string, unknown>
    if (values.help) {
      io.stdout.write(spec.usage)
      return EXIT.ok
    }
    const dataDir = resolveDataDir(values['data-dir'] as string | undefined, io.env)
    const logger = stderrLogger(io)
    const out = (doc: Record<string, unknown>, human: string) => {
      if (json) io.stdout.write(`${JSON.stringify({ ok: true, command, ...doc }, jsonReplacer)}\n`)
      else io.stdout.write(human)
    }
    const positionals = parsed.positionals
    if (command !== 'seal' && positionals.length > 0) {
      throw new UsageError('Unexpected argument', { details: { argument: positionals[0] } })
    }

    if (command === 'init') {
      const contractFlags = ['capsule-registry', 'node-registry', 'access-controller'].map(
        (f) => values[f] as string | undefined,
      )
      const given = contractFlags.filter((v) => v !== undefined).length
      if (values.deploy && given > 0)
        throw new UsageError('Give --deploy or the contract addresses, not both')
      if (!values.deploy && given !== 3) {
        throw new UsageError('init needs --deploy or all three contract addresses', {
          hint: 'Pass --capsule-registry, --node-registry and --access-controller, or --deploy on a dev chain.',
        })
      }
      for (const [i, v] of contractFlags.entries()) {
        if (v !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(v)) {
          throw new UsageError('A contract address is malformed', {
            details: { index: i, value: v },
          })
        }
      }
      const sealer = sealerFromFlags(values, io.env, dataDir) as SealerConfig
      const chainId = positiveInt('chain-id', values['chain-id'] as string | undefined)
      const quorum = positiveInt('quorum', values.quorum as string | undefined)
      const confirmations = wholeNumber('confirmations', values.confirmations as string | undefined)
      const keyguard = {
        ...(confirmations !== undefined ? { confirmations } : {}),
        ...(values['disable-fast-path'] === true ? { fastPath: false } : {}),
      }
      const { initPiNode } = await import('./pi-node.ts')
      const result = await initPiNode(
        {
          dataDir,
          rpcUrl:
            (values['rpc-url'] as string | undefined) ??
            io.env.DIGICAP_RPC_URL ??
            'http://127.0.0.1:8545',
          ...(chainId !== undefined ? { chainId } : {}),
          sealer,
          deploy: values.deploy === true,
          ...(given === 3
            ? {
                contracts: {
                  capsuleRegistry: contractFlags[0] as string,
                  nodeRegistry: contractFlags[1] as string,
                  accessController: contractFlags[2] as string,
                },
              }
            : {}),
          ...(values.listen ? { listen: values.listen as string[] } : {}),
          ...(values.bootstrap ? { bootstrap: values.bootstrap as string[] } : {}),
          ...(values.announce ? { announce: values.announce as string[] } : {}),
          ...(values['extra-rpc-url'] ? { rpcUrls: values['extra-rpc-url'] as string[] } : {}),
          ...(quorum !== undefined ? { quorum } : {}),
          ...(Object.keys(keyguard).length > 0 ? { keyguard } : {}),
          force: values.force === true,
        },
        { logger },
      )
      const mnemonicInJson = json && values['show-mnemonic-in-json'] === true
      if (!mnemonicInJson) {
        const words = result.mnemonic.split(' ')
        const lines = words.map((w, i) => `${String(i + 1).padStart(2)}. ${w}`)
        io.stderr.write(
          '\n=== RECOVERY MNEMONIC: write these 24 words on paper NOW. They are shown only once. ===\n' +
            `${lines.join('\n')}\n` +
            '=== Anyone with these words controls your capsules. Never store them on this device. ===\n\n',
        )
      }
      if (result.operator.warning) io.stderr.write(`WARNING: ${result.operator.warning}\n`)
      out(
        {
          dataDir,
          owner: result.owner,
          operator: result.operator,
          sealer: result.sealer,
          chainId: result.config.chainId,
          contracts: result.config.contracts,
          deployed: result.deployed,
          ...(mnemonicInJson ? { mnemonic: result.mnemonic } : {}),
        },
        `Initialised pi-node in ${dataDir}\n` +
          `  owner address    ${result.owner.address}\n` +
          `  libp2p peer id   ${result.owner.peerId}\n` +
          `  operator         ${result.operator.address ?? 'none'}${result.operator.approved ? ' (approved)' : ' (NOT approved)'}\n` +
          `  recovery key id  ${result.owner.recoveryKeyId}\n` +
          `  sealer           ${result.sealer.kind} (key ${result.sealer.keyId.slice(0, 16)}…)${result.sealer.warning ? '  (see the WARNING above)' : ''}\n` +
          `  chain            ${result.config.chainId} capsuleRegistry ${result.config.contracts.capsuleRegistry}\n`,
      )
      return EXIT.ok
    }

    if (command === 'recover') {
      const mnemonic = await readStdin(io.stdin)
      if (!mnemonic) {
        throw new UsageError('recover reads the mnemonic from stdin; got nothing', {
          hint: 'pi-node recover < words.txt (or type the words and press Ctrl-D).',
        })
      }
      const contractFlags = ['capsule-registry', 'node-registry', 'access-controller'].map(
        (f) => values[f] as string | undefined,
      )
      for (const [i, v] of contractFlags.entries()) {
        if (v !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(v)) {
          throw new UsageError('A contract address is malformed', {
            details: { index: i, value: v },
          })
        }
      }
      const existing = await loadConfig(dataDir, io.env).catch(() => undefined)
      const sealer = sealerFromFlags(values, io.env, dataDir, existing?.sealer)
      const chainId = positiveInt('chain-id', values['chain-id'] as string | undefined)
      const startBlock = wholeNumber('start-block', values['start-block'] as string | undefined)
      const fetchTimeoutMs = positiveInt(
        'fetch-timeout-ms',
        values['fetch-timeout-ms'] as string | undefined,
      )
      const rpcUrl = (values['rpc-url'] as string | undefined) ?? io.env.DIGICAP_RPC_URL
      const { recoverPiNode } = await import('./recover.ts')
      const result = await recoverPiNode(
        {
          dataDir,
          mnemonic,
          ...(sealer ? { sealer } : {}),
          ...(rpcUrl ? { rpcUrl } : {}),
          ...(chainId !== undefined ? { chainId } : {}),
          ...(contractFlags.every((v) => v !== undefined)
            ? {
                contracts: {
                  capsuleRegistry: contractFlags[0] as string,
                  nodeRegistry: contractFlags[1] as string,
                  accessController: contractFlags[2] as string,
                },
              }
            : {}),
          ...(values.peer ? { peers: values.peer as string[] } : {}),
          ...(values.listen ? { listen: values.listen as string[] } : {}),
          ...(startBlock !== undefined ? { startBlock } : {}),
          ...(fetchTimeoutMs !== undefined ? { fetchTimeoutMs } : {}),
          onProgress: (phase, done, total) => io.stderr.write(`${phase} ${done}/${total}\n`),
        },
        { logger },
      )
      out(
        { ...result },
        `Recovered ${result.recovered.length} capsule key(s) for ${result.owner} (peer ${result.peerId}) onto ${result.sealer.kind} key ${result.sealer.keyId.slice(0, 16)}…\n` +
          `  chain keyguard record updated for ${result.chain.keyguardUpdated.length} capsule(s); ${result.chain.revoked.length} revoked skipped\n` +
          (result.failed.length > 0
            ? `  FAILED: ${result.failed.map((f) => `${f.capsuleId} (${f.reason ?? f.code})`).join(', ')}\n`
            : '') +
          (result.notPinned.length > 0
            ? `  not pinned here: ${result.notPinned.map((f) => f.capsuleId).join(', ')}\n`
            : ''),
      )
      return result.failed.length > 0 ? EXIT.failure : EXIT.ok
    }

    const loaded = await loadConfig(dataDir, io.env)
    const config =
      command === 'serve'
        ? {
            ...loaded,
            ...(values.listen ? { listen: values.listen as string[] } : {}),
            ...(values.announce ? { announce: values.announce as string[] } : {}),
          }
        : loaded
    const { createPiNode } = await import('./pi-node.ts')
    const pi = await createPiNode(config, { logger })

    if (command === 'seal') {
      if (positionals.length !== 1) throw new UsageError('seal takes exactly one <file>')
      const policy = values.policy as string | undefined
      if (!policy)
        throw new UsageError('seal needs --policy', { hint: `e.g. --policy "maxRuns(3)"` })
      const runtime = (values.runtime as string | undefined) ?? 'data'
      if (!['data', 'quickjs', 'wasi'].includes(runtime)) {
        throw new UsageError('--runtime must be data, quickjs or wasi', {
          details: { value: runtime },
        })
      }
      const file = positionals[0] as string
      const memoryMb = positiveInt('memory-mb', values['memory-mb'] as string | undefined)
      const timeMs = positiveInt('time-ms', values['time-ms'] as string | undefined)
      const announceTimeoutMs = positiveInt(
        'announce-timeout-ms',
        values['announce-timeout-ms'] as string | undefined,
      )
      const receivers = ((values.receiver as string[] | undefined) ?? []).map(parseReceiver)
      const bar = progressReporter(io)
      const result = await pi
        .seal({
          file,
          policy,
          runtime: runtime as RuntimeKind,
          ...(values.entry ? { entry: values.entry as string } : {}),
          ...(values.code ? { code: values.code as string } : {}),
          receivers,
          ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
          ...(timeMs !== undefined ? { timeLimit: timeMs } : {}),
          ...(announceTimeoutMs !== undefined ? { announceTimeoutMs } : {}),
          onProgress: bar.update,
        })
        .finally(bar.finish)
      out(
        { ...result },
        `Sealed ${file}\n` +
          `  capsule id   ${result.capsuleId}\n` +
          `  CID          ${result.cid}\n` +
          `  policy       ${result.policy}\n` +
          `  register tx  ${result.registerTransaction}\n` +
          `  announced    ${result.announced.ok ? `yes (${result.announced.recipients} peer(s))` : `no (${result.announced.reason}); serve provides it from the blockstore`}\n`,
      )
      return EXIT.ok
    }

    if (command === 'status') {
      const s = await pi.status()
      const sealerLine =
        'error' in s.sealer
          ? `unavailable: error[${s.sealer.error.code}] ${s.sealer.error.message}`
          : `${s.sealer.kind} ${s.sealer.hardwareBacked ? 'hardware-backed' : 'NOT hardware-backed'} key ${s.sealer.keyId.slice(0, 16)}…`
      if (!('error' in s.sealer) && s.sealer.warning) warnOnce(io, s.sealer.warning)
      if (s.operator.warning) io.stderr.write(`WARNING: ${s.operator.warning}\n`)
      out(
        { status: s },
        `pi-node ${s.dataDir}\n` +
          `  owner       ${s.owner.address}\n` +
          `  peer id     ${s.owner.peerId}\n` +
          `  operator    ${operatorLine(s.operator)}\n` +
          `  sealer      ${sealerLine}\n` +
          `  chain       ${s.chainId} ${s.rpcUrl} ${s.chain.reachable ? `head ${s.chain.head}, owner balance ${s.chain.ownerBalanceWei} wei` : `UNREACHABLE error[${s.chain.error.code}]`}\n` +
          `  registry    ${s.contracts.capsuleRegistry}\n` +
          `  capsules    ${s.capsules}\n` +
          `  daemon      ${s.daemon.running ? `running (pid ${s.daemon.pid})` : 'not running'}\n` +
          (s.daemon.keyguard ? keyguardLines(s.daemon.keyguard, s.daemon.updatedAt) : ''),
      )
      return EXIT.ok
    }

    // serve
    const confirmations = wholeNumber('confirmations', values.confirmations as string | undefined)
    const statusIntervalMs = positiveInt(
      'status-interval-ms',
      values['status-interval-ms'] as string | undefined,
    )
    const running = await pi.serve({
      ...(confirmations !== undefined ? { confirmations } : {}),
      ...(values['disable-fast-path'] === true ? { fastPath: false } : {}),
      ...(statusIntervalMs !== undefined ? { statusIntervalMs } : {}),
    })
    const kg = await running.keyguard.status()
    out(
      {
        peerId: running.peerId,
        multiaddrs: running.multiaddrs(),
        pid: process.pid,
        pinned: running.pinned,
        keyguard: kg,
      },
      `pi-node serving as ${running.peerId}\n${running
        .multiaddrs()
        .map((m) => `  ${m}\n`)
        .join('')}${keyguardLines(kg)}`,
    )
    const signal = await (io.waitForStop?.() ?? new Promise<string>(() => {}))
    logger.info('stopping', { signal })
    await running.stop()
    return EXIT.ok
  } catch (err) {
    return printError(io, err, json)
  }
}
