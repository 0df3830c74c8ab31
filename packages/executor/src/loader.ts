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
  verifyCapsuleHeader,
} from '@digicap/capsule-core'
import type { CapsuleStore } from '@digicap/p2p'
import { hexlify } from 'ethers'
import type { ExecutorChain, RegisteredCapsule } from './chain.ts'
import {
  CapsuleFetchError,
  CapsuleUnverifiedError,
  RegistryMismatchError,
  SandboxRuntimeUnsupportedError,
} from './errors.ts'
import { DEFAULT_RUNTIME_POLICY, type RuntimePolicy, resolveRuntime } from './runtime.ts'
import { type SandboxSet, sandboxFor } from './select.ts'
import type { RuntimeDescriptor } from './types.ts'

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
  /** Called once the header is verified (before the rest of the payload has arrived). */
  readonly onVerified?: ((parsed: ParsedCapsuleHeader) => void) | undefined
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
}): Promise<{ registered: RegisteredCapsule; runtime: RuntimeDescriptor }> {
  const { header } = p.parsed
  let signer: string
  try {
    signer = verifyCapsuleHeader(p.parsed)
  } catch (cause) {
    throw new CapsuleUnverifiedError('The capsule header is not signed by its owner', {
      details: { owner: header.owner },
      cause,
    })
  }
  const mismatch = (field: string, details: Record<string, unknown> = {}): never => {
    throw new RegistryMismatchError(`The registry does not list this capsule so (${field})`, {
      details: { field, capsuleId: hexlify(header.capsuleId), ...details },
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
  if (!eqAddr(registered.owner, signer)) mismatch('owner', { registered: registered.owner })
  if (registered.cid !== p.cid) mismatch('cid', { registered: registered.cid.slice(0, 100) })
  if (!eqAddr(registered.policy, header.policy.policy)) mismatch('policy')
  if (registered.revoked) mismatch('revoked')
  if (!eqBytes(registered.plaintextHash, header.payload.plaintextCommitment)) {
    mismatch('plaintextHash')
  }
  const runtime = resolveRuntime(header.runtime, p.runtimePolicy ?? DEFAULT_RUNTIME_POLICY)
  sandboxFor(runtime, p.sandboxes)
  return { registered, runtime }
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
  let verified: { registered: RegisteredCapsule; runtime: RuntimeDescriptor } | undefined
  let bytes = 0
  let verifyMs = 0
  try {
    try {
      for await (const chunk of p.store.get(
        p.cid,
        p.signal === undefined ? {} : { signal: p.signal },
      )) {
        await file.write(chunk)
        bytes += chunk.byteLength
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
        verified = await verifyCapsule({
          cid: p.cid,
          parsed,
          chain: p.chain,
          sandboxes: p.sandboxes,
          runtimePolicy: p.runtimePolicy,
        })
        verifyMs = performance.now() - v0
        p.onVerified?.(parsed)
        if (bytes > parsed.capsuleLength) {
          throw new CapsuleFetchError('The content is longer than its capsule header says', {
            details: { expected: parsed.capsuleLength },
          })
        }
      }
    } catch (err) {
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
    await file.close()
  }
  if (!parsed || !verified) {
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
    registered: verified.registered,
    runtime: verified.runtime,
    bytes,
    verifyMs,
  }
}
