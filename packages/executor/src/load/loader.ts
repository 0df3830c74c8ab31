/**
 * The loader: fetch a capsule by CID, parse its header from the first bytes while the rest
 * streams to a workspace file, and refuse it — before any access request — unless the owner
 * signed the header, the registry lists this capsule with this CID and owner, and this host
 * offers the runtime it asks for.
 */
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CapsuleTruncatedError,
  DigicapError,
  MAX_HEADER_LENGTH,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
  toHex,
  type VerifiedCapsuleHeader,
  verifiedCapsuleHeader,
} from '@digicap/capsule-core'
import type { CapsuleStore } from '@digicap/p2p'
import type { ExecutorChain, RegisteredCapsule } from '../chain.ts'
import {
  CapsuleFetchError,
  CapsuleFetchTimeoutError,
  CapsuleUnverifiedError,
  RegistryMismatchError,
  SandboxRuntimeUnsupportedError,
} from '../errors.ts'
import { DEFAULT_RUNTIME_POLICY, type RuntimePolicy, resolveRuntime } from '../sandbox/runtime.ts'
import { type SandboxSet, sandboxFor } from '../sandbox/select.ts'
import type { RuntimeDescriptor } from '../sandbox/types.ts'

/** Most bytes before the header must have parsed (preamble + largest header + signature). */
const MAX_PREFIX = MAX_HEADER_LENGTH + 1024

export interface LoadCapsuleParameters {
  readonly cid: string
  readonly store: CapsuleStore
  readonly chain: ExecutorChain
  /** Directory the capsule file is written to (a workspace temp dir). */
  readonly dir: string
  readonly sandboxes: SandboxSet
  readonly runtimePolicy?: RuntimePolicy | undefined
  readonly signal?: AbortSignal | undefined
  /**
   * Give up when no byte has arrived for this long, ms (an idle timeout: a large capsule that
   * keeps arriving is never cut). Default {@link DEFAULT_FETCH_TIMEOUT_MS}.
   */
  readonly timeoutMs?: number | undefined
  /** Called as the fetch progresses: bytes received, peers asked, blocks received. */
  readonly onProgress?: ((progress: FetchProgress) => void) | undefined
  /** Called once the header is verified (before the rest of the payload has arrived). */
  readonly onVerified?: ((parsed: ParsedCapsuleHeader) => void) | undefined
}

/** Default idle timeout of a capsule fetch: 120 s without a byte. */
export const DEFAULT_FETCH_TIMEOUT_MS = 120_000

/** How far a capsule fetch has come. */
export interface FetchProgress {
  /** Capsule bytes received. */
  readonly bytes: number
  /** Distinct peers asked for the content (bitswap want-lists sent). */
  readonly peersAsked: number
  /** Blocks received from peers. */
  readonly blocksReceived: number
}

export interface LoadedCapsule {
  readonly cid: string
  /** The capsule file in the workspace. */
  readonly path: string
  readonly parsed: ParsedCapsuleHeader
  readonly registered: RegisteredCapsule
  /** The limits this host grants the run. */
  readonly runtime: RuntimeDescriptor
  /** Bytes fetched. */
  readonly bytes: number
  /** Time spent verifying the header (signature, registry, runtime), ms; part of the fetch. */
  readonly verifyMs: number
  /** capsule-core's proof of the header signature: the open does not check it again. */
  readonly verified?: VerifiedCapsuleHeader | undefined
}

const eqAddr = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
const eqBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i])

/**
 * The checks on a parsed header, in order: signature, chain and registry, runtime.
 * @throws {CapsuleUnverifiedError} | {@link RegistryMismatchError} | {@link SandboxRuntimeUnsupportedError}
 */
export async function verifyCapsule(p: {
  cid: string
  parsed: ParsedCapsuleHeader
  chain: ExecutorChain
  sandboxes: SandboxSet
  runtimePolicy?: RuntimePolicy | undefined
}): Promise<{
  registered: RegisteredCapsule
  runtime: RuntimeDescriptor
  verified: VerifiedCapsuleHeader
}> {
  const { header } = p.parsed
  let verified: VerifiedCapsuleHeader
  try {
    verified = verifiedCapsuleHeader(p.parsed)
  } catch (cause) {
    throw new CapsuleUnverifiedError('The capsule header is not signed by its owner', {
      details: { owner: header.owner },
      cause,
    })
  }
  const mismatch = (field: string, details: Record<string, unknown> = {}): never => {
    throw new RegistryMismatchError(`The registry does not list this capsule so (${field})`, {
      details: { field, capsuleId: toHex(header.capsuleId), ...details },
    })
  }
  if (BigInt(header.policy.chainId) !== p.chain.chainId) {
    mismatch('chainId', { header: header.policy.chainId, chain: p.chain.chainId })
  }
  if (!eqAddr(header.policy.registry, p.chain.capsuleRegistry)) {
    mismatch('registry', { header: header.policy.registry })
  }
  const registered = await p.chain.getCapsule(header.capsuleId)
  if (!registered) return mismatch('capsuleId')
  if (!eqAddr(registered.owner, verified.owner)) {
    mismatch('owner', { registered: registered.owner })
  }
  if (registered.cid !== p.cid) mismatch('cid', { registered: registered.cid.slice(0, 100) })
  if (!eqAddr(registered.policy, header.policy.policy)) mismatch('policy')
  if (registered.revoked) mismatch('revoked')
  if (!eqBytes(registered.plaintextHash, header.payload.contentCommitment)) {
    mismatch('plaintextHash')
  }
  const runtime = resolveRuntime(header.runtime, p.runtimePolicy ?? DEFAULT_RUNTIME_POLICY)
  sandboxFor(runtime, p.sandboxes)
  return { registered, runtime, verified }
}

/**
 * Fetches `cid` into `dir/capsule.bin`, verifying the header as soon as its bytes are in.
 *
 * @throws {CapsuleFetchError} for a bad CID, a fetch failure, or bytes that are not a capsule.
 * @throws {CapsuleUnverifiedError} | {@link RegistryMismatchError} | {@link SandboxRuntimeUnsupportedError}
 * @example
 * ```ts
 * const loaded = await loadCapsule({ cid, store, chain, dir: await ws.tempDir('capsule-'), sandboxes })
 * ```
 */
export async function loadCapsule(p: LoadCapsuleParameters): Promise<LoadedCapsule> {
  const path = join(p.dir, 'capsule.bin')
  const file = await open(path, 'wx', 0o600)
  let prefix: Uint8Array[] = []
  let prefixLength = 0
  let parsed: ParsedCapsuleHeader | undefined
  let checked: Awaited<ReturnType<typeof verifyCapsule>> | undefined
  let bytes = 0
  let verifyMs = 0
  const progress = { bytes: 0, peersAsked: 0, blocksReceived: 0 }
  const report = (change: Partial<FetchProgress>) => {
    Object.assign(progress, change)
    try {
      p.onProgress?.({ ...progress })
    } catch {
      // a failing progress display must not fail the fetch
    }
  }
  // The idle timeout: restarted by every chunk; on expiry it aborts the fetch.
  const timeoutMs = p.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS
  const idle = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const restartTimer = () => {
    clearTimeout(timer)
    timer = setTimeout(() => idle.abort(), timeoutMs)
  }
  const signal = p.signal === undefined ? idle.signal : AbortSignal.any([idle.signal, p.signal])
  restartTimer()
  try {
    try {
      for await (const chunk of p.store.get(p.cid, {
        signal,
        onNetwork: (n) => report(n),
      })) {
        restartTimer()
        await file.write(chunk)
        bytes += chunk.byteLength
        report({ bytes })
        if (parsed) {
          if (bytes > parsed.capsuleLength) {
            throw new CapsuleFetchError('The content is longer than its capsule header says', {
              details: { expected: parsed.capsuleLength },
            })
          }
          continue
        }
        prefix.push(chunk)
        prefixLength += chunk.byteLength
        const head = Buffer.concat(prefix, prefixLength)
        try {
          parsed = parseCapsuleHeader(new Uint8Array(head.buffer, head.byteOffset, head.length))
        } catch (err) {
          if (err instanceof CapsuleTruncatedError && prefixLength < MAX_PREFIX) continue
          throw new CapsuleFetchError('The content is not a capsule', { cause: err })
        }
        prefix = []
        const v0 = performance.now()
        // Chain reads are not the fetch: the idle timer waits while they run.
        clearTimeout(timer)
        checked = await verifyCapsule({
          cid: p.cid,
          parsed,
          chain: p.chain,
          sandboxes: p.sandboxes,
          runtimePolicy: p.runtimePolicy,
        })
        restartTimer()
        verifyMs = performance.now() - v0
        p.onVerified?.(parsed)
        if (bytes > parsed.capsuleLength) {
          throw new CapsuleFetchError('The content is longer than its capsule header says', {
            details: { expected: parsed.capsuleLength },
          })
        }
      }
    } catch (err) {
      if (idle.signal.aborted && !p.signal?.aborted) {
        throw new CapsuleFetchTimeoutError(
          `No peer provided the capsule within ${formatSeconds(timeoutMs)}`,
          {
            details: { cid: p.cid.slice(0, 100), timeoutMs, ...progress },
            hint:
              progress.peersAsked === 0
                ? "No peer was connected to ask. Is the owner's pi-node running (`pi-node serve`) and reachable? Add it with --bootstrap or --keyguard-addr."
                : `${progress.peersAsked} peer(s) were asked and none has it. Is the owner's pi-node running (\`pi-node serve\`)? On a slow link, raise the fetch timeout (--fetch-timeout <seconds>).`,
            cause: err,
          },
        )
      }
      if (
        err instanceof CapsuleUnverifiedError ||
        err instanceof RegistryMismatchError ||
        err instanceof SandboxRuntimeUnsupportedError ||
        err instanceof CapsuleFetchError
      ) {
        throw err
      }
      throw new CapsuleFetchError('Could not fetch the capsule', {
        details: {
          cid: p.cid.slice(0, 100),
          code: err instanceof DigicapError ? err.code : 'UNKNOWN',
        },
        cause: err,
      })
    }
  } finally {
    clearTimeout(timer)
    await file.close()
  }
  if (!parsed || !checked) {
    throw new CapsuleFetchError('The content ends inside the capsule header', {
      details: { bytes },
    })
  }
  if (bytes !== parsed.capsuleLength) {
    throw new CapsuleFetchError('The content is shorter than its capsule header says', {
      details: { bytes, expected: parsed.capsuleLength },
    })
  }
  return {
    cid: p.cid,
    path,
    parsed,
    registered: checked.registered,
    runtime: checked.runtime,
    bytes,
    verifyMs,
    verified: checked.verified,
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`
}
