/** The `executor-node` command line: parses flags, builds the node, runs one command, prints. */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { type DigicapError, x25519PublicKey } from '@digicap/capsule-core'
import {
  EXIT,
  type Io,
  jsonReplacer,
  printError,
  printVersion,
  VERSION_FLAGS,
} from '@digicap/cli-kit'
// Types only: the modules behind them (helia, libp2p, ethers, the sandboxes) load when a
// command needs them, so `--help` and `--version` start in a fraction of the time.
import type { AutoRunEvent, FetchProgress, RunStage, StageEvent } from '@digicap/executor'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import { executorNodePaths, resolveDataDir } from './config.ts'
import { UsageError } from './errors.ts'

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string }

export interface CliIo extends Io {
  env: NodeJS.ProcessEnv
  /** Resolves when the daemon should stop (SIGINT/SIGTERM in the binary). */
  waitForStop: () => Promise<string>
}

const GLOBAL: Record<string, OptionSpec> = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  listen: { type: 'string', multiple: true },
}

const COMMANDS: Record<string, { options: Record<string, OptionSpec>; usage: string }> = {
  init: {
    options: {
      'rpc-url': { type: 'string' },
      'extra-rpc-url': { type: 'string', multiple: true },
      quorum: { type: 'string' },
      'chain-id': { type: 'string' },
      'capsule-registry': { type: 'string' },
      'node-registry': { type: 'string' },
      'access-controller': { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      'keyguard-addr': { type: 'string', multiple: true },
      fast: { type: 'boolean' },
      'mnemonic-file': { type: 'string' },
      force: { type: 'boolean' },
    },
    usage: `executor-node init --capsule-registry <a> --node-registry <a> --access-controller <a> [options]

Creates the executor's identity (a 24-word BIP-39 mnemonic: Ethereum account + libp2p key)
in <data-dir>/identity.json (0600), a receiver key (X25519) in receiver.key (0600), and
<data-dir>/config.json. A generated mnemonic is shown ONCE on stderr.

Options:
  --rpc-url <url>              chain RPC (env DIGICAP_RPC_URL; default http://127.0.0.1:8545)
  --extra-rpc-url <url>        another RPC of the same chain for the registry checks' quorum,
                               repeatable (env DIGICAP_RPC_URLS, comma list)
  --quorum <n>                 RPCs that must agree on a registry read (default: majority)
  --chain-id <n>               expected chain id (default: asked from the RPC)
  --capsule-registry <addr>    Digicap contracts
  --node-registry <addr>
  --access-controller <addr>
  --listen <multiaddr>         libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/4011)
  --bootstrap <multiaddr>      peer to dial at start, repeatable
  --keyguard-addr <multiaddr>  keyguard to dial before each run, repeatable
  --fast                       use the keyguard fast path by default
  --mnemonic-file <path>       import these words instead of generating new ones
  --force                      move an existing node's files aside
`,
  },
  register: {
    options: { stake: { type: 'string' }, roles: { type: 'string' } },
    usage: `executor-node register --stake <eth> [--roles executor,verifier]

Registers this executor in the NodeRegistry with its libp2p peer id and <eth> of stake.
`,
  },
  run: {
    options: {
      fast: { type: 'boolean' },
      'no-fallback': { type: 'boolean' },
      'keyguard-addr': { type: 'string', multiple: true },
      fee: { type: 'string' },
      out: { type: 'string' },
      arg: { type: 'string', multiple: true },
      'fetch-timeout': { type: 'string' },
    },
    usage: `executor-node run <cid> [--fast] [--keyguard-addr <multiaddr>] [options]

Runs one capsule: fetch -> verify -> grant -> release -> open -> run -> deliver -> clean-up,
one progress line per stage on stderr. The result goes to the header's receivers and to
stdout (text) or --out.

Options:
  --fast                       keyguard fast path first (env DIGICAP_FAST=1)
  --no-fallback                do not fall back to the chain path when the fast path fails
  --keyguard-addr <multiaddr>  dial this keyguard first, repeatable
  --fee <wei>                  value sent with the access request (default 0)
  --arg <text>                 program argument, repeatable
  --out <file>                 write the result here instead of stdout
  --fetch-timeout <seconds>    give up when no byte of the capsule arrives for this long
                               (config fetchTimeoutMs; default 120)
`,
  },
  serve: {
    options: { 'auto-run': { type: 'boolean' }, fast: { type: 'boolean' } },
    usage: `executor-node serve [--auto-run] [--fast]

Daemon: answers key releases, delivers pending results when receivers connect, and listens
to capsule announcements. With --auto-run it runs each announced capsule of this chain and
registry once (the policy decides; a refusal is printed, not fatal). Without it, announced
capsules are only listed; run one with \`executor-node run <cid>\`. Stops on SIGINT/SIGTERM.
`,
  },
  receive: {
    options: { 'key-file': { type: 'string' }, once: { type: 'boolean' } },
    usage: `executor-node receive [--key-file <path>] [--once]

Receiver daemon: waits for results on /digicap/result/2.0.0 (inline or by IPFS CID). A result
is taken only when it is signed by the executor its grant names on chain (AccessController),
for that grant, capsule and measurement, sealed to this key, and not seen before; each one is
printed with the verified executor address, each refusal with its reason (one JSON line each
under --json). Opens with the X25519 key (default <data-dir>/receiver.key). --once exits after
the first result.
`,
  },
}

const MAIN_USAGE = `executor-node <command> [options]

Commands:
  init       create identity, receiver key and config
  register   stake and register in the NodeRegistry
  run        run one capsule, with a stage-by-stage progress display
  serve      daemon: key releases, announcements (--auto-run), pending deliveries
  receive    receiver daemon: print results as they arrive

Global options:
  --data-dir <dir>   data folder (env DIGICAP_DATA_DIR; default ~/.digicap/executor-node)
  --json             one JSON document on stdout (JSON lines for daemons)
  --listen <maddr>   override the listen addresses (repeatable)
  -h, --help         help (also per command: executor-node run --help)
  -V, --version      this program's version and the Node running it
`

function out(io: Io, json: boolean, value: unknown, text: string): void {
  io.stdout.write(json ? `${JSON.stringify(value, jsonReplacer)}\n` : text)
}

const STAGE_LABEL: Record<RunStage, string> = {
  fetch: 'fetch',
  verify: 'verify',
  grant: 'grant',
  release: 'release',
  open: 'open',
  run: 'run',
  deliver: 'deliver',
  cleanup: 'clean-up',
}

function stagePrinter(io: Io): (e: StageEvent) => void {
  return (e) => {
    if (e.status === 'start') {
      const extra = e.detail?.fallback
        ? ` (fast path failed: ${String(e.detail.fallback)}; chain path)`
        : ''
      io.stderr.write(`  … ${STAGE_LABEL[e.stage]}${extra}\n`)
      return
    }
    const d = e.detail ?? {}
    const facts: string[] = []
    if (typeof d.bytes === 'number') facts.push(`${d.bytes} bytes`)
    if (typeof d.path === 'string') facts.push(`${d.path} path`)
    if (typeof d.owner === 'string') facts.push(`owner ${d.owner}`)
    if (typeof d.filesRemoved === 'number') {
      facts.push(
        `${d.filesRemoved} files, ${d.dirsRemoved} dirs, ${d.buffersZeroed} buffers zeroed`,
      )
    }
    if (Array.isArray(d.deliveries)) facts.push(`${d.deliveries.length} receiver(s)`)
    io.stderr.write(
      `  ✓ ${STAGE_LABEL[e.stage].padEnd(8)} ${(e.ms ?? 0).toFixed(0).padStart(6)} ms  ${facts.join(', ')}\n`,
    )
  }
}

/**
 * While the capsule is fetched, a line every `everyMs` with what the fetch has done (time
 * waited, peers asked, bytes received), so a fetch nobody answers is visibly alive.
 */
function fetchProgressPrinter(io: Io, everyMs = 2000) {
  let latest: FetchProgress = { bytes: 0, peersAsked: 0, blocksReceived: 0 }
  let started = 0
  let timer: ReturnType<typeof setInterval> | undefined
  const stop = () => {
    clearInterval(timer)
    timer = undefined
  }
  return {
    onProgress(p: FetchProgress) {
      latest = p
    },
    onStage(e: StageEvent) {
      if (e.stage !== 'fetch') return
      if (e.status === 'start') {
        started = Date.now()
        timer = setInterval(() => {
          const s = ((Date.now() - started) / 1000).toFixed(0)
          io.stderr.write(
            `    fetch: ${s} s, asked ${latest.peersAsked} peer(s), ${latest.bytes} bytes received\n`,
          )
        }, everyMs)
        timer.unref()
      } else stop()
    },
    stop,
  }
}

const hex = (bytes: Uint8Array): string => `0x${Buffer.from(bytes).toString('hex')}`

function printable(bytes: Uint8Array): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting binary output
  return /[\u0000-\u0008\u000e-\u001f]/.test(text) ? hex(bytes) : text
}

/** Runs one command line; returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  // Start-up, measured from the process's start (performance's time origin): Node's boot and
  // this module, then the node's modules (helia, libp2p, ethers, sandboxes), then the node.
  const processMs = performance.now()
  const first = argv[0]
  const json = argv.includes('--json')
  try {
    if (first === undefined || first === '--help' || first === '-h') {
      io.stdout.write(MAIN_USAGE)
      return first === undefined ? EXIT.usage : EXIT.ok
    }
    if (VERSION_FLAGS.includes(first)) {
      return printVersion(io, 'executor-node', new URL('../package.json', import.meta.url), json)
    }
    const spec = COMMANDS[first]
    if (!spec) {
      throw new UsageError('Unknown command', {
        details: { command: first },
        hint: 'executor-node --help',
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
      throw new UsageError((cause as Error).message, { hint: `executor-node ${first} --help` })
    }
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>
    if (values.help) {
      io.stdout.write(spec.usage)
      return EXIT.ok
    }
    const dataDir = resolveDataDir(values['data-dir'] as string | undefined, io.env)
    const listen = values.listen as string[] | undefined
    const modulesStart = performance.now()
    const {
      createExecutorNode,
      initExecutorNode,
      parseRoles,
      parseStake,
      readReceiverKey,
      requireStakeFunds,
    } = await import('./executor-node.ts')
    const modulesMs = performance.now() - modulesStart

    switch (first) {
      case 'init': {
        const contracts = {
          capsuleRegistry: values['capsule-registry'] as string | undefined,
          nodeRegistry: values['node-registry'] as string | undefined,
          accessController: values['access-controller'] as string | undefined,
        }
        for (const [k, v] of Object.entries(contracts)) {
          if (v === undefined || !/^0x[0-9a-fA-F]{40}$/.test(v)) {
            throw new UsageError('init needs the three contract addresses', {
              details: { missing: k },
              hint: 'Pass --capsule-registry, --node-registry and --access-controller.',
            })
          }
        }
        const extraRpcUrls = values['extra-rpc-url'] as string[] | undefined
        const quorumText = values.quorum as string | undefined
        const quorum = quorumText === undefined ? undefined : Number(quorumText)
        if (
          quorum !== undefined &&
          (!Number.isSafeInteger(quorum) || quorum < 1 || quorum > 1 + (extraRpcUrls?.length ?? 0))
        ) {
          throw new UsageError('--quorum must be 1..the number of RPC URLs', {
            details: { quorum: quorumText, rpcs: 1 + (extraRpcUrls?.length ?? 0) },
          })
        }
        const chainIdText = values['chain-id'] as string | undefined
        const chainId = chainIdText === undefined ? undefined : Number(chainIdText)
        if (chainId !== undefined && (!Number.isSafeInteger(chainId) || chainId <= 0)) {
          throw new UsageError('--chain-id must be a positive integer')
        }
        let mnemonic: string | undefined
        if (values['mnemonic-file']) {
          const { readFile } = await import('node:fs/promises')
          mnemonic = (await readFile(values['mnemonic-file'] as string, 'utf8')).trim()
        }
        const r = await initExecutorNode({
          dataDir,
          rpcUrl:
            (values['rpc-url'] as string | undefined) ??
            io.env.DIGICAP_RPC_URL ??
            'http://127.0.0.1:8545',
          rpcUrls: extraRpcUrls,
          quorum,
          chainId,
          contracts: contracts as {
            capsuleRegistry: string
            nodeRegistry: string
            accessController: string
          },
          listen,
          bootstrap: values.bootstrap as string[] | undefined,
          keyguardAddrs: values['keyguard-addr'] as string[] | undefined,
          fast: values.fast === true,
          mnemonic,
          force: values.force === true,
        })
        if (r.generated) {
          io.stderr.write(
            '\n=== RECOVERY MNEMONIC: write these 24 words on paper NOW. They are shown only once. ===\n' +
              `${r.mnemonic}\n` +
              '=== They are also in identity.json (0600); whoever reads it controls this executor. ===\n\n',
          )
        }
        out(
          io,
          json,
          {
            ok: true,
            dataDir,
            address: r.address,
            peerId: r.peerId,
            receiverPublicKey: r.receiverPublicKey,
            chainId: r.config.chainId,
          },
          `executor-node initialised in ${dataDir}\n  address            ${r.address}\n  peer id            ${r.peerId}\n  receiver key       ${r.receiverPublicKey}\n  chain              ${r.config.chainId}\nNext: fund the address, then \`executor-node register --stake <eth>\`.\n`,
        )
        return EXIT.ok
      }
      case 'register': {
        if (values.stake === undefined) throw new UsageError('register needs --stake <eth>')
        const stake = parseStake(values.stake as string)
        const roles = parseRoles((values.roles as string | undefined) ?? 'executor')
        const en = await createExecutorNode(dataDir, io.env, { listen: [], executor: false })
        try {
          await requireStakeFunds(en.wallet, stake)
          const tx = await en.chain.registerNode({
            peerId: en.node.libp2p.peerId.toMultihash().bytes,
            attestationKeyHash: new Uint8Array(32),
            roles,
            stake,
          })
          out(
            io,
            json,
            {
              ok: true,
              address: en.wallet.address,
              peerId: en.peerId,
              roles,
              stake,
              transaction: tx,
            },
            `registered ${en.wallet.address} (peer ${en.peerId}, roles ${roles}) with ${values.stake} ETH\n  tx ${tx}\n`,
          )
        } finally {
          await en.stop()
        }
        return EXIT.ok
      }
      case 'run': {
        const cid = parsed.positionals[0]
        if (!cid) throw new UsageError('run needs a CID', { hint: 'executor-node run <cid>' })
        const feeText = values.fee as string | undefined
        let fee = 0n
        if (feeText !== undefined) {
          if (!/^[0-9]+$/.test(feeText)) throw new UsageError('--fee must be an integer (wei)')
          fee = BigInt(feeText)
        }
        const timeoutText = values['fetch-timeout'] as string | undefined
        const fetchTimeoutS = timeoutText === undefined ? undefined : Number(timeoutText)
        if (
          fetchTimeoutS !== undefined &&
          (!/^[0-9]+(\.[0-9]+)?$/.test(timeoutText as string) || fetchTimeoutS <= 0)
        ) {
          throw new UsageError('--fetch-timeout must be a positive number of seconds', {
            details: { 'fetch-timeout': timeoutText },
          })
        }
        const nodeStart = performance.now()
        const en = await createExecutorNode(dataDir, io.env, listen ? { listen } : {})
        const startup = {
          ms: performance.now(),
          processMs,
          modulesMs,
          nodeMs: performance.now() - nodeStart,
        }
        const stages = stagePrinter(io)
        const fetching = fetchProgressPrinter(io)
        try {
          io.stderr.write(`run ${cid}\n`)
          io.stderr.write(
            `  ✓ ${'start'.padEnd(8)} ${startup.ms.toFixed(0).padStart(6)} ms  process ${startup.processMs.toFixed(0)}, modules ${startup.modulesMs.toFixed(0)}, node ${startup.nodeMs.toFixed(0)}\n`,
          )
          const r = await en.executor.runCapsule(cid, {
            ...(values.fast === true ? { fast: true } : {}),
            ...(fetchTimeoutS === undefined
              ? {}
              : { fetchTimeoutMs: Math.round(fetchTimeoutS * 1000) }),
            fallbackToChain: values['no-fallback'] !== true,
            keyguardAddrs: (values['keyguard-addr'] as string[] | undefined) ?? [],
            fee,
            args: (values.arg as string[] | undefined) ?? [],
            onStage: (e) => {
              fetching.onStage(e)
              stages(e)
            },
            onFetchProgress: fetching.onProgress,
          })
          if (values.out) await writeFile(values.out as string, r.result, { mode: 0o600 })
          out(
            io,
            json,
            {
              ok: true,
              runId: r.runId,
              capsuleId: r.capsuleId,
              grantId: r.grantId,
              path: r.path,
              result: values.out ? undefined : printable(r.result),
              resultBytes: r.result.byteLength,
              deliveries: r.deliveries,
              timings: r.timings,
              startup,
              cleanup: r.cleanup,
            },
            values.out ? `result written to ${values.out as string}\n` : `${printable(r.result)}\n`,
          )
          if (en.executor.pendingDeliveries() > 0) {
            io.stderr.write(
              `  ${en.executor.pendingDeliveries()} result(s) stored on IPFS for offline receivers; \`executor-node serve\` delivers them when they connect\n`,
            )
          }
        } finally {
          fetching.stop()
          await en.stop()
        }
        return EXIT.ok
      }
      case 'serve': {
        const [{ autoRunner }, { subscribeCapsuleAnnouncements }] = await Promise.all([
          import('@digicap/executor'),
          import('@digicap/p2p'),
        ])
        const en = await createExecutorNode(dataDir, io.env, listen ? { listen } : {})
        const line = (value: Record<string, unknown>, text: string) => out(io, json, value, text)
        line(
          {
            event: 'started',
            peerId: en.peerId,
            addresses: en.node.multiaddrs(),
            address: en.wallet.address,
          },
          `serving as ${en.peerId} (${en.wallet.address})\n${en.node
            .multiaddrs()
            .map((a) => `  ${a}\n`)
            .join('')}`,
        )
        // Bounded: a capped queue, an LRU of seen CIDs, a per-announcer rate limit, one run
        // at a time (see autoRunner in @digicap/executor).
        const auto =
          values['auto-run'] === true
            ? autoRunner({
                chainId: en.config.chainId,
                registry: en.config.contracts.capsuleRegistry,
                runOptions: values.fast === true ? { fast: true } : {},
                onEvent: (e: AutoRunEvent) => {
                  if (e.type === 'ignored') {
                    if (e.reason === 'duplicate' || e.reason === 'stopped') return
                    line(
                      { event: 'ignored', cid: e.cid, reason: e.reason },
                      `ignored ${e.cid}: ${e.reason}\n`,
                    )
                  } else if (e.type === 'ran') {
                    const r = e.result
                    line(
                      {
                        event: 'ran',
                        cid: e.cid,
                        runId: r.runId,
                        path: r.path,
                        deliveries: r.deliveries,
                        timings: r.timings,
                      },
                      `ran ${e.cid} via ${r.path}: ${r.deliveries.length} delivery(ies)\n`,
                    )
                  } else if (e.type === 'failed') {
                    const err = e.error as {
                      code?: string
                      shortMessage?: string
                      message?: string
                    }
                    line(
                      {
                        event: 'refused',
                        cid: e.cid,
                        code: err.code ?? 'INTERNAL',
                        message: err.shortMessage ?? err.message,
                      },
                      `error[${err.code ?? 'INTERNAL'}]: ${err.shortMessage ?? err.message} (${e.cid})\n`,
                    )
                  }
                },
              })({ node: en.node, executor: en.executor })
            : undefined
        const unsubscribe = subscribeCapsuleAnnouncements(
          en.node,
          (ann: CapsuleAnnouncement, from: string) => {
            line(
              { event: 'announcement', cid: ann.cid, capsuleId: ann.capsuleId },
              `announced ${ann.cid} (capsule ${String(ann.capsuleId)})\n`,
            )
            auto?.offer(ann, from)
          },
        )
        const reason = await io.waitForStop()
        if (typeof unsubscribe === 'function') unsubscribe()
        await auto?.stop()
        await en.stop()
        line({ event: 'stopped', reason }, `stopped (${reason})\n`)
        return EXIT.ok
      }
      case 'receive': {
        const keyFile =
          (values['key-file'] as string | undefined) ?? executorNodePaths(dataDir).receiverKey
        const privateKey = await readReceiverKey(keyFile)
        const en = await createExecutorNode(dataDir, io.env, {
          ...(listen ? { listen } : {}),
          executor: false,
        })
        const receiver = en.receiver(privateKey)
        receiver.events.addEventListener('error', (e) => {
          const err = (e as CustomEvent<DigicapError>).detail
          const d = err.details
          out(
            io,
            json,
            {
              event: 'refused',
              code: err.code,
              reason: d.reasonCode ?? err.shortMessage,
              runId: d.runId,
              grantId: d.grantId,
              from: d.from,
              executor: d.executor,
            },
            `refused result of run ${String(d.runId ?? '?')} from ${String(d.from ?? '?')}: ${String(d.reasonCode ?? err.shortMessage)}${d.executor === undefined ? '' : ` (signed by ${String(d.executor)})`}
`,
          )
        })
        await receiver.start()
        const pub = hex(x25519PublicKey(privateKey))
        out(
          io,
          json,
          {
            event: 'listening',
            peerId: en.peerId,
            publicKey: pub,
            addresses: en.node.multiaddrs(),
          },
          `receiving as ${en.peerId} (key ${pub})\n${en.node
            .multiaddrs()
            .map((a) => `  ${a}\n`)
            .join('')}`,
        )
        const stop = io.waitForStop()
        try {
          for (;;) {
            const next = receiver.next(24 * 3600 * 1000)
            const r = await Promise.race([next, stop.then(() => undefined)])
            if (!r) break
            out(
              io,
              json,
              {
                event: 'result',
                runId: r.runId,
                capsuleId: r.capsuleId,
                grantId: r.grantId,
                executor: r.executor,
                from: r.from,
                via: r.via,
                result: printable(r.output),
              },
              `result of run ${r.runId} from executor ${r.executor} (verified on chain; peer ${r.from}, ${r.via}):\n${printable(r.output)}\n`,
            )
            if (values.once === true) break
          }
        } finally {
          await receiver.stop()
          await en.stop()
        }
        return EXIT.ok
      }
      default:
        throw new UsageError('Unknown command', { details: { command: first } })
    }
  } catch (err) {
    return printError(io, err, json)
  }
}
