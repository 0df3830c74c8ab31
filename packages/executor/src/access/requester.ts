/**
 * The access requester: a fresh X25519 key pair per run; the fast path (a signed request to
 * the keyguard peer, key release inline) and the chain path (`requestAccess`, then the
 * keyguard pushes the release on `/digicap/key-release/1.0.0`), with fallback from fast to
 * chain.
 */
import {
  CapsuleSignatureError,
  DigicapError,
  type DigicapSigner,
  decodeHpkeSealed,
  generateX25519KeyPair,
  hpkeOpen,
  toHex,
  type X25519KeyPair,
} from '@digicap/capsule-core'
import {
  type AccessRequest,
  addressToBytes,
  createStreamGate,
  fastPathProtocol,
  handle,
  type KeyRelease,
  keyReleaseProtocol,
  type ReleaseAck,
  request,
  type StreamGateStats,
  signAccessRequestWith,
} from '@digicap/protocol'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { ExecutorChain } from '../chain.ts'
import {
  AccessDeniedError,
  AccessRefusedError,
  AccessUnavailableError,
  KeyReleaseInvalidError,
  KeyReleaseTimeoutError,
} from '../errors.ts'

/** A data key as released to this run. */
export interface ReleasedKey {
  readonly grantId: Uint8Array
  readonly dataKey: Uint8Array
  readonly path: 'fast' | 'chain'
}

interface Pending {
  readonly capsuleId: string
  readonly privateKey: Uint8Array
  readonly from: PeerId
  readonly verifyKey: ((dataKey: Uint8Array) => boolean) | undefined
  readonly resolve: (r: { grantId: Uint8Array; dataKey: Uint8Array }) => void
  readonly fail: (err: Error) => void
}

/** What the inbox saw; for the node's logs and tests. */
export type ReleaseInboxEvent =
  | { type: 'release-accepted'; grantId: string }
  | { type: 'release-unknown'; grantId: string }
  | { type: 'release-rejected'; grantId: string; reason: 'wrong-peer' | 'key-mismatch' }
  | { type: 'release-error'; code: string }

/**
 * The executor's `/digicap/key-release/1.0.0` handler. A release is matched to a pending run
 * by trying that run's ephemeral key (the HPKE AAD is the grant id, so only the right key and
 * grant open it); this also covers a release that arrives before the executor has read the
 * grant id from its own receipt. Unknown → `unknown-grant`; nothing opens → `unknown-grant`
 * too (a release for someone else is not our business).
 *
 * The ephemeral key and grant id are public on chain, so anyone can seal *a* key that opens.
 * A release is therefore only considered when it comes from the peer the run names (`from`:
 * the capsule header's keyguard; libp2p authenticates the peer id), and the opened key must
 * pass `verifyKey` (the header's key commitment). A release from another peer gets
 * `unknown-grant` and the run keeps waiting for the real one; a wrong key from the keyguard
 * itself gets `open-failed` and fails the run with `KEY_RELEASE_INVALID`.
 */
export interface ReleaseInbox {
  /** Wait for the release of a grant on `capsuleId` sealed to `keys.publicKey`. */
  expect(
    capsuleId: Uint8Array,
    keys: X25519KeyPair,
    options: {
      deadline: number
      /** The only peer whose release is accepted (the capsule header's keyguard). */
      from: PeerId
      /** Checks the opened key (e.g. against the header's key commitment) before `ok`. */
      verifyKey?: ((dataKey: Uint8Array) => boolean) | undefined
      signal?: AbortSignal | undefined
    },
  ): Promise<{ grantId: Uint8Array; dataKey: Uint8Array }>
  stop(): Promise<void>
}

/** Per-peer and global bounds of the inbox (memory stays bounded under any flood). */
export interface ReleaseInboxLimits {
  /** Releases of one peer in progress at once. Default 4. */
  readonly maxPerPeer?: number
  /** Releases in progress at once, all peers. Default 32 (at most 32 × 64 KiB buffered). */
  readonly maxInFlight?: number
  /** Time for a release frame to arrive, ms. Default 5000. */
  readonly readTimeoutMs?: number
}

export async function createReleaseInbox(
  libp2p: Pick<Libp2p, 'handle' | 'unhandle'>,
  onEvent: (e: ReleaseInboxEvent) => void = () => {},
  limits: ReleaseInboxLimits = {},
): Promise<ReleaseInbox & { stats(): StreamGateStats }> {
  const pending = new Set<Pending>()
  const gate = createStreamGate({
    maxPerPeer: limits.maxPerPeer ?? 4,
    maxTotal: limits.maxInFlight ?? 32,
  })
  const unhandle = await handle(
    libp2p,
    keyReleaseProtocol,
    async (release: KeyRelease, context): Promise<ReleaseAck> => {
      const capsuleId = toHex(release.capsuleId)
      let rejected: 'wrong-peer' | undefined
      for (const p of pending) {
        if (p.capsuleId !== capsuleId) continue
        if (!p.from.equals(context.peer)) {
          rejected ??= 'wrong-peer'
          continue
        }
        let dataKey: Uint8Array
        try {
          dataKey = await hpkeOpen(p.privateKey, decodeHpkeSealed(release.hpke), release.grantId)
        } catch {
          continue
        }
        if (p.verifyKey !== undefined && !p.verifyKey(dataKey)) {
          // The authenticated keyguard itself released a wrong key: no better one will come.
          dataKey.fill(0)
          onEvent({
            type: 'release-rejected',
            grantId: toHex(release.grantId),
            reason: 'key-mismatch',
          })
          p.fail(new KeyReleaseInvalidError('The released key is not this capsule’s key'))
          return { grantId: release.grantId, status: 'open-failed' }
        }
        // The run may have ended while we were opening.
        if (!pending.has(p)) {
          dataKey.fill(0)
          continue
        }
        pending.delete(p)
        p.resolve({ grantId: release.grantId, dataKey })
        onEvent({ type: 'release-accepted', grantId: toHex(release.grantId) })
        return { grantId: release.grantId, status: 'ok' }
      }
      if (rejected !== undefined) {
        onEvent({ type: 'release-rejected', grantId: toHex(release.grantId), reason: rejected })
        return { grantId: release.grantId, status: 'unknown-grant' }
      }
      onEvent({ type: 'release-unknown', grantId: toHex(release.grantId) })
      return { grantId: release.grantId, status: 'unknown-grant' }
    },
    {
      timeout: 5000,
      readTimeout: limits.readTimeoutMs ?? 5000,
      gate,
      onError: (err) => onEvent({ type: 'release-error', code: err.code }),
    },
  )
  return {
    stats: () => gate.stats(),
    expect(capsuleId, keys, options) {
      return new Promise((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined
        const fail = (err: Error): void => {
          clearTimeout(timer)
          pending.delete(entry)
          options.signal?.removeEventListener('abort', onAbort)
          reject(err)
        }
        const entry: Pending = {
          capsuleId: toHex(capsuleId),
          privateKey: keys.privateKey,
          from: options.from,
          verifyKey: options.verifyKey,
          resolve: (r) => {
            clearTimeout(timer)
            options.signal?.removeEventListener('abort', onAbort)
            resolve(r)
          },
          fail,
        }
        const onAbort = (): void =>
          fail(new KeyReleaseTimeoutError('Stopped waiting for the key release (aborted)'))
        timer = setTimeout(
          () =>
            fail(
              new KeyReleaseTimeoutError('No key release arrived before the grant expired', {
                details: { capsuleId: entry.capsuleId },
                hint: 'Is the keyguard online, and can it dial this executor?',
              }),
            ),
          Math.max(0, options.deadline - Date.now()),
        )
        options.signal?.addEventListener('abort', onAbort, { once: true })
        pending.add(entry)
      })
    },
    async stop() {
      await unhandle()
      for (const p of [...pending]) {
        p.fail(new KeyReleaseTimeoutError('Stopped waiting for the key release (executor stopped)'))
      }
      pending.clear()
    },
  }
}

export interface AccessParameters {
  readonly libp2p: Pick<Libp2p, 'dialProtocol' | 'dial'>
  readonly inbox: ReleaseInbox
  readonly chain: ExecutorChain
  /** The executor's account: signs fast-path requests (any signer; no key needs to be here). */
  readonly signer: DigicapSigner
  readonly keyguardPeer: PeerId
  readonly capsuleId: Uint8Array
  /**
   * Checks a released data key before it is accepted (the capsule header's key commitment,
   * `checkKeyCommitment`). A release whose key fails is refused and the run keeps waiting.
   */
  readonly verifyKey?: ((dataKey: Uint8Array) => boolean) | undefined
  readonly measurement: Uint8Array
  readonly jobParams: Uint8Array
  readonly fee: bigint
  readonly fast: boolean
  readonly fallbackToChain: boolean
  /** Time limit of one fast-path exchange, ms. */
  readonly fastTimeoutMs: number
  /** Longest wait for a chain-path release when the grant lives longer, ms. */
  readonly maxReleaseWaitMs: number
  readonly signal?: AbortSignal | undefined
  /** Told when the grant is known (before the release is opened). */
  readonly onGrant?: ((path: 'fast' | 'chain', grantId: Uint8Array) => void) | undefined
  /** Told when a fast-path attempt failed and the chain path is tried instead. */
  readonly onFallback?: ((error: DigicapError) => void) | undefined
}

function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32))
}

async function fastPath(p: AccessParameters, keys: X25519KeyPair): Promise<ReleasedKey> {
  const req: AccessRequest = await signAccessRequestWith(
    p.signer,
    {
      capsuleId: p.capsuleId,
      executor: addressToBytes(p.signer.address),
      ephemeralKey: keys.publicKey,
      measurement: p.measurement,
      jobParamsHash: keccak_256(p.jobParams),
      fee: p.fee,
      nonce: randomNonce(),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
      jobParams: p.jobParams,
    },
    {
      chainId: p.chain.chainId,
      verifyingContract: p.chain.accessController as `0x${string}`,
    },
  )
  let res: Awaited<
    ReturnType<typeof request<AccessRequest, import('@digicap/protocol').AccessResponse>>
  >
  try {
    res = await request(p.libp2p, p.keyguardPeer, fastPathProtocol, req, {
      timeout: p.fastTimeoutMs,
      ...(p.signal === undefined ? {} : { signal: p.signal }),
    })
  } catch (cause) {
    throw new AccessUnavailableError('The keyguard did not answer the fast-path request', {
      details: {
        keyguard: p.keyguardPeer.toString(),
        code: cause instanceof DigicapError ? cause.code : 'DIAL',
      },
      cause,
    })
  }
  if (res.status === 'refused') {
    if (res.reasonCode === 'policy-denied') {
      throw new AccessDeniedError(sanitize(res.reason ?? 'DENIED'), 'fast')
    }
    if (res.reasonCode === 'not-attested') {
      // The keyguard runs the same attestation gate on chain grants: a transaction would only
      // be refused again, and the chain path has no refusal message (the run would wait out
      // the grant). `reason` keeps the keyguard's detail (e.g. `not-attested: evidence:QUOTE_RUN_PCR`).
      throw new AccessDeniedError(
        res.reason === undefined ? 'not-attested' : `not-attested: ${sanitize(res.reason)}`,
        'fast',
      )
    }
    throw new AccessRefusedError(res.reasonCode, {
      details: {
        ...(res.reason === undefined ? {} : { reason: sanitize(res.reason) }),
        ...(res.retryAfterMs === undefined ? {} : { retryAfterMs: res.retryAfterMs }),
      },
    })
  }
  p.onGrant?.('fast', res.grantId)
  if (res.keyRelease) {
    const release = res.keyRelease
    let dataKey: Uint8Array
    if (!sameBytes(release.grantId, res.grantId) || !sameBytes(release.capsuleId, p.capsuleId)) {
      throw new KeyReleaseInvalidError('The inline key release is for another grant or capsule')
    }
    try {
      dataKey = await hpkeOpen(keys.privateKey, decodeHpkeSealed(release.hpke), res.grantId)
    } catch (cause) {
      throw new KeyReleaseInvalidError('The inline key release does not open', { cause })
    }
    if (p.verifyKey !== undefined && !p.verifyKey(dataKey)) {
      dataKey.fill(0)
      throw new KeyReleaseInvalidError('The released key is not this capsule’s key')
    }
    return { grantId: res.grantId, dataKey, path: 'fast' }
  }
  const got = await p.inbox.expect(p.capsuleId, keys, {
    deadline: Date.now() + p.maxReleaseWaitMs,
    from: p.keyguardPeer,
    verifyKey: p.verifyKey,
    signal: p.signal,
  })
  return { ...got, path: 'fast' }
}

async function chainPath(p: AccessParameters, keys: X25519KeyPair): Promise<ReleasedKey> {
  // Register interest first: the keyguard may push before our receipt is read.
  const ac = new AbortController()
  const onOuter = (): void => ac.abort()
  p.signal?.addEventListener('abort', onOuter, { once: true })
  const waiting = p.inbox.expect(p.capsuleId, keys, {
    deadline: Date.now() + p.maxReleaseWaitMs,
    from: p.keyguardPeer,
    verifyKey: p.verifyKey,
    signal: ac.signal,
  })
  waiting.catch(() => {})
  try {
    const grant = await p.chain.requestAccess({
      capsuleId: p.capsuleId,
      ephemeralKey: keys.publicKey,
      measurement: p.measurement,
      jobParams: p.jobParams,
      fee: p.fee,
    })
    p.onGrant?.('chain', grant.grantId)
    const expiresIn = grant.expiresAt * 1000 - Date.now()
    const got = await Promise.race([
      waiting,
      new Promise<never>((_, reject) =>
        setTimeout(
          () =>
            reject(
              new KeyReleaseTimeoutError('No key release arrived before the grant expired', {
                details: { grantId: toHex(grant.grantId) },
              }),
            ),
          Math.max(0, Math.min(expiresIn, p.maxReleaseWaitMs)),
        ).unref(),
      ),
    ])
    if (!sameBytes(got.grantId, grant.grantId)) {
      // A reorg can re-include the request after another grant of the capsule: same request,
      // another run index, another grant id than the receipt named. The release opened with this
      // run's ephemeral key; it is this run's grant if the chain says so (same capsule, key and
      // executor: the ephemeral key is public once the request is in the mempool).
      const moved = await p.chain.getGrant?.(got.grantId)
      if (
        moved === undefined ||
        !sameBytes(moved.capsuleId, p.capsuleId) ||
        !sameBytes(moved.ephemeralKey, keys.publicKey) ||
        !sameBytes(moved.executor, addressToBytes(p.signer.address))
      ) {
        throw new KeyReleaseInvalidError('The key release names another grant', {
          details: { expected: toHex(grant.grantId), got: toHex(got.grantId) },
          hint: 'The receipt’s grant id and the released one differ and the chain holds no grant of this run under the released id.',
        })
      }
      p.onGrant?.('chain', got.grantId)
    }
    return { ...got, path: 'chain' }
  } finally {
    ac.abort()
    p.signal?.removeEventListener('abort', onOuter)
  }
}

/**
 * Gets the data key for one run. The fast path is tried first when `fast` is set; its
 * failure falls back to the chain path when `fallbackToChain` is set — except a
 * `policy-denied` or `not-attested` refusal ({@link AccessDeniedError}): the chain evaluates the
 * same policy, the keyguard the same attestation gate, and a transaction would only spend gas
 * to be refused again, so those refusals are final; so is a signer's failure
 * (`CapsuleSignatureError`), since the chain path signs with the same account.
 *
 * @returns the released key and the ephemeral key pair (the caller zeroes both).
 */
export async function acquireKey(
  p: AccessParameters,
): Promise<ReleasedKey & { ephemeral: X25519KeyPair }> {
  const keys = generateX25519KeyPair()
  if (p.fast) {
    try {
      return { ...(await fastPath(p, keys)), ephemeral: keys }
    } catch (err) {
      keys.privateKey.fill(0)
      if (!p.fallbackToChain || err instanceof AccessDeniedError) throw err
      // The signer failed (refused, or signed as another account): the chain path needs it too.
      if (err instanceof CapsuleSignatureError) throw err
      if (!(err instanceof DigicapError)) throw err
      p.onFallback?.(err)
    }
  }
  // A fresh pair for the chain path: never reuse a key a refused request exposed.
  const chainKeys = p.fast ? generateX25519KeyPair() : keys
  try {
    return { ...(await chainPath(p, chainKeys)), ephemeral: chainKeys }
  } catch (err) {
    chainKeys.privateKey.fill(0)
    throw err
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g
function sanitize(text: string): string {
  return text.replace(CONTROL, '').slice(0, 128)
}
