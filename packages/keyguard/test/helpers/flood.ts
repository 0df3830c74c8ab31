/**
 * A stranger flooding the fast path, for the flood test and the flood bench: requests signed by
 * fresh keys (each a new executor address, or the real executor's address with a forged
 * signature) naming a capsule the keyguard holds, and streams holding half a frame.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import {
  type AccessDomain,
  type AccessRequest,
  addressOfPrivateKey,
  addressToBytes,
  encodeFrame,
  FAST_PATH_PROTOCOL,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes } from 'ethers'
import { accessDomain } from './access-request.ts'
import type { KeyguardWorld } from './keyguard-world.ts'

const FLOOD_CHILD = fileURLToPath(new URL('../fixtures/flood-child.ts', import.meta.url))

/** The first half of a 60 000-byte frame. */
const HALF_FRAME = encodeFrame(new Uint8Array(60_000)).subarray(0, 30_003)

export interface FloodTarget {
  keyguard: PeerId
  capsuleId: string
  measurement: string
  domain: AccessDomain
  /** The registered executor's address, claimed by `forged` requests. */
  executor: string
}

/** The world's keyguard, first capsule and registered executor, as a flood's target. */
export function floodTargetOf(w: KeyguardWorld): FloodTarget {
  return {
    keyguard: w.kgNode.peerId,
    capsuleId: w.capsuleId,
    measurement: w.chain.measurement,
    domain: accessDomain(w.chain),
    executor: w.chain.executor.address,
  }
}

/** What `test/fixtures/flood-child.ts` takes (JSON in argv[2]). */
export interface FloodConfig {
  keyguard: { peerId: string; addrs: string[] }
  capsuleId: string
  measurement: string
  chainId: string
  accessController: string
  executor: string
  /** Stranger peer ids (one libp2p node each). */
  peers: number
  /** Half-frame streams each stranger keeps open. */
  holders: number
  /** Answers the strangers must have got before `filled` resolves. */
  fillAnswers: number
  durationMs: number
  /**
   * A stranger whose exchanges fail this many times in a row (its connection cut, its
   * reconnects refused) takes a fresh key, so a new peer id, and goes on; each failure is
   * followed by a reconnect with the same peer id first. Default: never (same peer ids).
   */
  rotateAfterErrors?: number
}

export interface FloodProcessOptions {
  /** CPUs the flood process may run on (`taskset -c`), e.g. `'1'`. Default: any. */
  cpus?: string
}

export interface Flood {
  /** Resolves when every stranger is connected. */
  ready: Promise<void>
  /** Resolves once the strangers got `fillAnswers` answers. */
  filled: Promise<void>
  /** Resolves with the answers the strangers got when the flood is over. */
  done: Promise<FloodCounts>
  /** Resolves with the peer ids the flood used in all (fresh ones after each rotation). */
  peerIds: Promise<number>
  /** Ends the flood now (`done` then resolves). */
  stop(): void
  kill(): void
  /**
   * Holds the flood (SIGUSR1): no new request or held frame until `resume()`. The process keeps
   * running, so its connections stay open and answer libp2p's pings (a frozen process's
   * connections are aborted by the keyguard's connection monitor, and their reconnects then
   * meet libp2p's per-host limit, not the flood's target).
   */
  pause(): void
  /** Lets a held flood go on (SIGUSR2). */
  resume(): void
}

/** Runs a stranger flood in a child process. */
export function startFlood(config: FloodConfig, options: FloodProcessOptions = {}): Flood {
  const argv = [process.execPath, '--no-warnings', FLOOD_CHILD, JSON.stringify(config)]
  const [cmd, ...args] =
    options.cpus === undefined ? argv : ['taskset', '-c', options.cpus, ...argv]
  const proc = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  let buf = ''
  const lines: { type: string; counts?: FloodCounts; peerIds?: number }[] = []
  const waiters: (() => void)[] = []
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const waitFor = async (type: string) => {
    for (;;) {
      const line = lines.find((l) => l.type === type)
      if (line !== undefined) return line
      const more = new Promise<void>((r) => waiters.push(r))
      if ((await Promise.race([more.then(() => 'line'), exited.then(() => 'exit')])) === 'exit') {
        const last = lines.find((l) => l.type === type)
        if (last !== undefined) return last
        throw new Error(`flood child exited: ${err.slice(0, 2000)}`)
      }
    }
  }
  const ready = waitFor('ready').then(() => undefined)
  const filled = waitFor('filled').then(() => undefined)
  const doneLine = waitFor('done')
  const done = doneLine.then((l) => l.counts ?? {})
  const peerIds = doneLine.then((l) => l.peerIds ?? config.peers)
  // Awaited by the caller when it needs them; a killed child must not be an unhandled rejection.
  for (const p of [ready, filled, done, peerIds]) p.catch(() => undefined)
  return {
    ready,
    filled,
    done,
    peerIds,
    stop: () => proc.kill('SIGTERM'),
    kill: () => proc.kill('SIGKILL'),
    pause: () => proc.kill('SIGUSR1'),
    resume: () => proc.kill('SIGUSR2'),
  }
}

/** A switch the flood's loops wait on while it is off. */
export interface FloodHold {
  /** Resolves at once when the flood is on, else when it is turned on again. */
  wait(): Promise<void>
}

/** Refusal reason codes (and `error` for a failed exchange) a flood got, counted. */
export type FloodCounts = Record<string, number>

/**
 * A request a stranger can make for free: signed by a fresh key for its own fresh address, or
 * (`forged`) naming the registered executor but signed by a fresh key.
 */
export function strangerRequest(target: FloodTarget, forged = false): AccessRequest {
  const key = randomBytes(32)
  return signAccessRequest(
    {
      capsuleId: getBytes(target.capsuleId),
      executor: forged
        ? addressToBytes(target.executor as `0x${string}`)
        : addressOfPrivateKey(key),
      ephemeralKey: randomBytes(32),
      measurement: getBytes(target.measurement),
      jobParamsHash: keccak_256(new Uint8Array(0)),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 590),
      jobParams: new Uint8Array(0),
    },
    target.domain,
    key,
  )
}

/**
 * Sends stranger requests from `node` back to back until `signal` fires, or until
 * `giveUpAfterErrors` exchanges in a row failed (then it returns, for a fresh peer id); counts
 * the answers. A failed exchange is retried after 20 ms, which reconnects if the connection is gone.
 */
export async function floodRequests(
  node: Libp2p,
  target: FloodTarget,
  signal: AbortSignal,
  counts: FloodCounts,
  giveUpAfterErrors = Number.POSITIVE_INFINITY,
  hold?: FloodHold,
): Promise<void> {
  let failedInARow = 0
  for (let i = 0; !signal.aborted && failedInARow < giveUpAfterErrors; i++) {
    await hold?.wait()
    try {
      const res = await request(
        node,
        target.keyguard,
        fastPathProtocol,
        strangerRequest(target, i % 4 === 3),
        {
          timeout: 5000,
          signal,
        },
      )
      const key = res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status
      counts[key] = (counts[key] ?? 0) + 1
      failedInARow = 0
    } catch (err) {
      failedInARow++
      if (signal.aborted) break
      const key = `error:${(err as { code?: string }).code ?? (err as Error).name}`
      counts[key] = (counts[key] ?? 0) + 1
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}

/**
 * Keeps `n` streams from `node` open, each holding half of a 60 000-byte frame; re-opens one
 * whenever the keyguard drops it, until `signal` fires.
 */
export async function holdHalfFrames(
  node: Libp2p,
  keyguard: PeerId,
  n: number,
  signal: AbortSignal,
  held?: FloodHold,
): Promise<void> {
  const hold = async (): Promise<void> => {
    while (!signal.aborted) {
      await held?.wait()
      let stream: Stream | undefined
      try {
        stream = await node.dialProtocol(keyguard, FAST_PATH_PROTOCOL, { signal })
        stream.send(HALF_FRAME)
        const s = stream
        await new Promise<void>((resolve) => {
          if (s.status !== 'open') resolve()
          s.addEventListener('close', () => resolve(), { once: true })
          signal.addEventListener('abort', () => resolve(), { once: true })
        })
      } catch {
        // Refused (over the read cap) or the connection is gone: try again below.
      } finally {
        if (stream?.status === 'open') stream.abort(new Error('flood over'))
      }
      // Holds, rather than churns: a new half-frame a little after the keyguard dropped one.
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  await Promise.all(Array.from({ length: n }, hold))
}
