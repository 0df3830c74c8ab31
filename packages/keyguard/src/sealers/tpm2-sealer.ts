/**
 * The `tpm2` sealer: a persistent RSA-2048 decryption key under the owner hierarchy.
 * Wrapping runs in software from the public key; unwrapping runs only in the TPM. For
 * `swtpm:` and `device:` TCTIs (the default path) the sealer reads the key's public area with
 * `TPM2_ReadPublic`, pins its name (in the key record file when one is given), and runs every
 * `TPM2_RSA_Decrypt` in a session salted to that pinned key with the answer encrypted
 * (AES-128-CFB, `tpm2/session-decrypt.ts`): the data key never crosses the bus in clear.
 * Other TCTIs fall back to `tpm2_rsadecrypt` (ciphertext on stdin, plaintext on stdout),
 * WITHOUT session encryption: refused unless `allowUnencryptedTransport`, and `describe()`
 * says so. Provisioning uses tpm2-tools: it
 * carries no secret (empty authorization, the private key is generated inside the TPM).
 */
import { createPublicKey, randomBytes } from 'node:crypto'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InvalidArgumentError } from '@digicap/capsule-core/light'
import {
  type P256PublicKey,
  p256VerifyKeyPublic,
  policyAuthorizeDigest,
  type RsaKeyPublic,
  readRsaPublic,
  rsaPublicKeyObject,
  TPM_ALG,
  TPMA_OBJECT,
  TpmCommandError,
  TpmPolicyError,
  TpmSessionError,
  type TpmTransport,
  transportFor,
  withChannel,
} from '@digicap/tpm'
import {
  KeyStoreCorruptError,
  SealerRefusedError,
  TpmBusyError,
  TpmHandleError,
  TpmIdentityError,
  UnwrapError,
} from '../errors.ts'
import { rsaDecryptInSession } from '../tpm2/session-decrypt.ts'
import { runTpm2Tool, type Tpm2ToolsOptions } from '../tpm2/tools.ts'
import type { Logger, WrappedKey } from '../types.ts'
import {
  type EkActivationOptions,
  type EkActivationRecord,
  ekActivationText,
  trustKeyBeforePinning,
} from './ek-activation.ts'
import { createMutex } from './mutex.ts'
import {
  DEFAULT_POLICY_PCRS,
  EPOCH_POLICY_REF,
  epochIndexFor,
  REPROVISION_HINT,
} from './pcr-policy.ts'
import { RSA_BITS, RSA_CIPHERTEXT_LENGTH, rsaPublicKey, wrapWithPublicKey } from './rsa-oaep.ts'
import type { Sealer, SealerDescription, SealerPublicKey } from './sealer.ts'
import {
  readKeyRecord,
  TPM2_KEY_RECORD_KIND,
  type Tpm2KeyPolicy,
  writeKeyRecord,
} from './tpm2-key-record.ts'

/** Default persistent handle of the keyguard's wrapping key (owner range 0x81000000–0x817FFFFF). */
export const DEFAULT_TPM2_HANDLE = 0x81000010

const SCHEME = 'tpm2-rsa-oaep-sha256' as const
/**
 * Unrestricted RSA decryption key, sensitive part generated inside the TPM and never exported.
 * `noda`: its authValue is empty, so dictionary-attack protection guards nothing on it, and
 * without the flag any lockout (wrong passwords on another object, unclean power cuts) would
 * refuse every unwrap for the TPM's recovery time (ADR 0089).
 */
const KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|decrypt'
/** The same without `userwithauth`: usable only through its authPolicy. */
const POLICY_KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|noda|decrypt'

/**
 * The `authPolicy` of a PCR-bound key: PolicyAuthorize of the owner's authorizing key. A key
 * made since ADR 0094 names `EPOCH_POLICY_REF` (its approvals carry an NV epoch: rollback
 * protection); an older key an empty policyRef.
 */
function authPolicyOf(authKey: P256PublicKey, epoch: boolean): Uint8Array {
  return policyAuthorizeDigest(
    p256VerifyKeyPublic(authKey).name,
    epoch ? EPOCH_POLICY_REF : new Uint8Array(0),
  )
}

/** Which of the two PCR-bound templates `authPolicy` is for `authKey`, if either. */
function policyKind(
  authPolicy: Uint8Array,
  authKey: P256PublicKey,
): 'epoch' | 'legacy' | undefined {
  const found = Buffer.from(authPolicy)
  if (found.equals(Buffer.from(authPolicyOf(authKey, true)))) return 'epoch'
  if (found.equals(Buffer.from(authPolicyOf(authKey, false)))) return 'legacy'
  return undefined
}

export interface Tpm2SealerInit {
  /**
   * TCTI: `device:/dev/tpmrm0` on a Pi (the kernel resource manager),
   * `swtpm:host=127.0.0.1,port=2321` for a software TPM.
   */
  tcti: string
  /** Persistent handle of the wrapping key. Default {@link DEFAULT_TPM2_HANDLE}. */
  handle?: number
  /** Create the key at `handle` if the handle is empty (done once, at `init`). Default `false`. */
  createIfMissing?: boolean
  /** Directory of the tpm2-tools binaries; default: search `PATH`. */
  toolsPath?: string
  /** Timeout of one TPM command. Default 10 000 ms. */
  timeoutMs?: number
  /**
   * How `unwrap` reaches the TPM. `'direct'`: one `TPM2_RSA_Decrypt` command written to the
   * TCTI's socket or device, no process spawned (only `swtpm:` and `device:` TCTIs).
   * `'tools'`: `tpm2_rsadecrypt` through tpm2-tools (any TCTI). Default: `'direct'` where the
   * TCTI supports it, else `'tools'`.
   */
  unwrapVia?: 'direct' | 'tools'
  /**
   * Where the key's pinned public area lives (`tpm2-key.json` in the node's data folder). The
   * first load writes it; every later load refuses a key whose name differs
   * (`TpmSessionError`, `key-substituted`). Without it the key is pinned for the life of the
   * sealer object only.
   */
  keyRecordFile?: string
  /**
   * A node past its init (no `createIfMissing`): the key record must exist and the key it pins
   * must be at the handle. Without this a missing record is written afresh from whatever key
   * the TPM shows (trust on first use). Refused otherwise (`TpmSessionError`,
   * `key-record-missing` / `pinned-key-gone`): the host's secrets sealer sets it (ADR 0029
   * amendment).
   */
  requireKeyRecord?: boolean
  /**
   * The transport of the direct path, instead of the one the TCTI names (tests wrap it to
   * record or alter the bytes on the wire). Only with a `swtpm:` or `device:` TCTI.
   */
  transport?: TpmTransport
  /**
   * Create the key PCR-bound (only when `createIfMissing` provisions it): its `authPolicy` is
   * PolicyAuthorize of `authKey` (the owner's authorizing key, `derivePolicyAuthKey`), and an
   * unwrap needs a PCR set the owner approved (`authorizePcrPolicy`). Needs `keyRecordFile`.
   */
  pcrPolicy?: { authKey: P256PublicKey; pcrs?: readonly number[] }
  /**
   * Let `unwrap` run over tpm2-tools (`unwrapVia: 'tools'`, or a TCTI without a direct
   * transport: `mssim:`, `tabrmd:`), where no session encrypts the answer: the plain data key
   * crosses the bus, the TCTI's socket or D-Bus, and the tool's stdout. Default `false`: such
   * an unwrap is refused (`SEALER_REFUSED`, `unencrypted-transport`) before anything is sent.
   */
  allowUnencryptedTransport?: boolean
  /**
   * With `createIfMissing` (init, recover): what to do with a key at the handle whose policy is
   * not the one asked for (PCR-bound to another owner's authorizing key, PCR-bound when no
   * policy is asked, or not bound when one is): `false` (default) refuses it (`TPM_POLICY`,
   * `unfit-key`); `true` evicts it and creates a new one (`pi-node init --force`). Capsule
   * keys wrapped to the evicted key then open only with the paper words of the node that made it.
   */
  replaceUnfitKey?: boolean
  /**
   * Check a key before it is pinned (ADR 0097: init, recover, a first use without a record):
   * with `ekRoots`, credential activation against the TPM's certified EK, refused
   * (`TpmIdentityError`) unless the key proves to be in that TPM; without roots, a software
   * emulator is pinned as UNVERIFIED and a hardware TPM is refused (`no-ek-roots`) unless
   * `allowUnverified`. The outcome is kept in the key record (`ekActivation`) and shown by
   * `describe()`. Absent: no check, as before (the host's secrets sealer).
   */
  ekActivation?: EkActivationOptions
  logger?: Logger
}

/** What a load of the key yields: the wrapping public key and, on the direct path, its TPM public area. */
interface LoadedKey {
  publicKey: SealerPublicKey
  tpmPublic?: RsaKeyPublic
  /** Set for a PCR-bound key (its `authPolicy` is PolicyAuthorize of `authKey`). */
  policy?: Tpm2KeyPolicy
  /** How the pinned key's TPM was checked (from the key record), when it says. */
  ekActivation?: EkActivationRecord
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function formatHandle(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`
}

/** Parses the YAML-ish `key: value` output of `tpm2_readpublic` (top-level scalars and `value:`). */
function parseReadPublic(text: string): Map<string, string> {
  const out = new Map<string, string>()
  let section: string | undefined
  for (const line of text.split('\n')) {
    const top = /^([a-z][a-z0-9 -]*):\s*(.*)$/.exec(line)
    if (top?.[1] !== undefined) {
      section = top[1]
      if (top[2]) out.set(section, top[2].trim())
      continue
    }
    const nested = /^\s+value:\s*(.*)$/.exec(line)
    if (nested?.[1] !== undefined && section !== undefined) out.set(section, nested[1].trim())
  }
  return out
}

/**
 * Creates a sealer backed by a TPM 2.0 through tpm2-tools.
 *
 * TPM commands of one sealer run one at a time. With a TCTI that has no resource manager
 * (swtpm, `device:/dev/tpm0`) transient objects are flushed after provisioning and after
 * an out-of-memory answer; with `device:/dev/tpmrm0` the kernel flushes as well.
 *
 * @throws {TpmHandleError} (from the first call) if the handle is outside the owner
 *   persistent range, empty (and `createIfMissing` is off), or holds another kind of key.
 * @throws {TpmUnavailableError} if tpm2-tools are missing or the TPM does not answer.
 * @throws {TpmBusyError} if the TPM is busy, out of memory or locked out.
 * @example
 * ```ts
 * const sealer = tpm2Sealer({ tcti: 'device:/dev/tpmrm0', createIfMissing: true })
 * const wrapped = await sealer.wrap(dataKey)
 * const again = await sealer.unwrap(wrapped)
 * ```
 */
export function tpm2Sealer(init: Tpm2SealerInit): Sealer {
  const handle = init.handle ?? DEFAULT_TPM2_HANDLE
  if (typeof init.tcti !== 'string' || !/^[a-z0-9-]+(:[^\0\n]*)?$/i.test(init.tcti)) {
    throw new InvalidArgumentError(
      'tcti must look like "device:/dev/tpmrm0" or "swtpm:host=…,port=…"',
    )
  }
  if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x817fffff) {
    throw new TpmHandleError('Handle is not an owner-hierarchy persistent handle', {
      details: { handle },
      hint: 'Use a handle between 0x81000000 and 0x817FFFFF.',
    })
  }
  const handleText = formatHandle(handle)
  if (init.pcrPolicy !== undefined && init.keyRecordFile === undefined) {
    throw new InvalidArgumentError('pcrPolicy needs keyRecordFile (the approval lives there)')
  }
  const timeoutMs = init.timeoutMs ?? 10_000
  const requireRecord =
    init.requireKeyRecord === true && !init.createIfMissing && init.keyRecordFile !== undefined
  const tools: Tpm2ToolsOptions = {
    tcti: init.tcti,
    toolsPath: init.toolsPath,
    timeoutMs,
  }
  const transport =
    init.unwrapVia === 'tools'
      ? undefined
      : init.transport !== undefined && transportFor(init.tcti, timeoutMs) !== undefined
        ? init.transport
        : transportFor(init.tcti, timeoutMs)
  if (init.unwrapVia === 'direct' && transport === undefined) {
    throw new InvalidArgumentError(
      'unwrapVia "direct" needs a swtpm: or device: TCTI; use unwrapVia "tools" for this TCTI',
    )
  }
  if (init.unwrapVia !== undefined && init.unwrapVia !== 'direct' && init.unwrapVia !== 'tools') {
    throw new InvalidArgumentError('unwrapVia must be "direct" or "tools"')
  }
  const unwrapVia = transport === undefined ? 'tools' : 'direct'
  const mutex = createMutex()
  const emulated = /^(swtpm|mssim)\b/.test(init.tcti)
  let cached: Promise<LoadedKey> | undefined

  const flushTransient = () => runTpm2Tool(tools, 'tpm2_flushcontext', ['-t'], { op: 'flush' })

  /**
   * Without a resource manager (swtpm, /dev/tpm0) transient objects left by a crashed tool
   * fill the TPM's few object slots: on "out of memory", flush them and try once more.
   */
  async function withFlushRetry<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command()
    } catch (err) {
      if (!(err instanceof TpmBusyError) || err.details.reason !== 'busy') throw err
      await flushTransient()
      return command()
    }
  }

  async function readPublic(): Promise<LoadedKey> {
    if (transport !== undefined) return readPublicDirect()
    return { publicKey: await readPublicViaTools() }
  }

  /** `TPM2_ReadPublic` over the transport, with the same checks as the tools path. */
  async function readPublicDirect(): Promise<LoadedKey> {
    let pub: RsaKeyPublic
    try {
      pub = await withFlushRetry(() =>
        withChannel(transport!, (send) => readRsaPublic(send, handle)),
      )
    } catch (err) {
      if (err instanceof TpmCommandError && err.details.reason === 'public-area') {
        throw new TpmHandleError('The key at the handle is not a keyguard RSA-OAEP-SHA256 key', {
          details: { handle: handleText, mismatched: ['type'] },
          hint: 'Point the sealer at the keyguard key, or pick an empty handle and provision it.',
        })
      }
      throw err
    }
    const a = pub.objectAttributes
    const problems: string[] = []
    if (pub.keyBits !== RSA_BITS) problems.push('bits')
    if (!(a & TPMA_OBJECT.decrypt) || a & TPMA_OBJECT.restricted) problems.push('attributes')
    if (!(a & TPMA_OBJECT.fixedTPM) || !(a & TPMA_OBJECT.sensitiveDataOrigin))
      problems.push('origin')
    if (pub.scheme.scheme !== TPM_ALG.OAEP || pub.scheme.hashAlg !== TPM_ALG.SHA256)
      problems.push('scheme')
    if (pub.exponent < 3) problems.push('public')
    if (problems.length > 0) {
      throw new TpmHandleError('The key at the handle is not a keyguard RSA-OAEP-SHA256 key', {
        details: { handle: handleText, mismatched: problems },
        hint: 'Point the sealer at the keyguard key, or pick an empty handle and provision it.',
      })
    }
    const spki = rsaPublicKeyObject(pub).export({ type: 'spki', format: 'der' })
    return { publicKey: rsaPublicKey(SCHEME, new Uint8Array(spki)), tpmPublic: pub }
  }

  async function readPublicViaTools(): Promise<SealerPublicKey> {
    const { stdout } = await withFlushRetry(() =>
      runTpm2Tool(tools, 'tpm2_readpublic', ['-c', handleText], { op: 'read' }),
    )
    const fields = parseReadPublic(Buffer.from(stdout).toString('utf8'))
    const attributes = (fields.get('attributes') ?? '').split('|')
    const problems: string[] = []
    if (fields.get('type') !== 'rsa') problems.push('type')
    if (fields.get('bits') !== String(RSA_BITS)) problems.push('bits')
    if (!attributes.includes('decrypt') || attributes.includes('restricted'))
      problems.push('attributes')
    if (!attributes.includes('fixedtpm') || !attributes.includes('sensitivedataorigin'))
      problems.push('origin')
    if (fields.get('scheme') !== 'oaep' || fields.get('scheme-halg') !== 'sha256')
      problems.push('scheme')
    const modulus = fields.get('rsa')
    const exponent = Number(fields.get('exponent') ?? '0')
    if (
      !modulus ||
      !/^[0-9a-f]{512}$/.test(modulus) ||
      !Number.isSafeInteger(exponent) ||
      exponent < 3
    )
      problems.push('public')
    if (problems.length > 0) {
      throw new TpmHandleError('The key at the handle is not a keyguard RSA-OAEP-SHA256 key', {
        details: { handle: handleText, mismatched: problems },
        hint: 'Point the sealer at the keyguard key, or pick an empty handle and provision it.',
      })
    }
    const e = Buffer.alloc(4)
    e.writeUInt32BE(exponent)
    const spki = createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(modulus!, 'hex').toString('base64url'),
        e: e.subarray(e.findIndex((b) => b !== 0)).toString('base64url'),
      },
      format: 'jwk',
    }).export({ type: 'spki', format: 'der' })
    return rsaPublicKey(SCHEME, new Uint8Array(spki))
  }

  async function provision(): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'digicap-tpm2-'))
    const ctx = join(dir, 'key.ctx')
    try {
      // Random unique data: a primary key is otherwise a function of the owner seed and the
      // template, and a re-provisioned handle would get the very same key back.
      const args = ['-C', 'o', '-g', 'sha256', '-G', 'rsa2048:oaep-sha256:null']
      if (init.pcrPolicy === undefined) {
        args.push('-a', KEY_ATTRIBUTES, '-u', '-', '-c', ctx, '-Q')
      } else {
        // No userwithauth: only a policy session (PolicyPCR + PolicyAuthorize) can use it.
        const policyFile = join(dir, 'policy.digest')
        // Rollback-protected (ADR 0094): only approvals carrying the NV epoch unlock it.
        await writeFile(policyFile, authPolicyOf(init.pcrPolicy.authKey, true))
        args.push('-a', POLICY_KEY_ATTRIBUTES, '-L', policyFile, '-u', '-', '-c', ctx, '-Q')
      }
      await withFlushRetry(() =>
        runTpm2Tool(tools, 'tpm2_createprimary', args, { op: 'provision', input: randomBytes(32) }),
      )
      try {
        await withFlushRetry(() =>
          runTpm2Tool(tools, 'tpm2_evictcontrol', ['-C', 'o', '-c', ctx, handleText, '-Q'], {
            op: 'provision',
          }),
        )
      } finally {
        await flushTransient()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    init.logger?.info('keyguard: created TPM wrapping key', { handle: handleText })
  }

  /**
   * Why the key found at the handle cannot serve the policy asked for at init, or undefined
   * when it can. Only the direct path sees a key's `authPolicy`.
   */
  function unfitness(loaded: LoadedKey): string | undefined {
    const found = loaded.tpmPublic?.authPolicy
    if (found === undefined) return undefined
    if (init.pcrPolicy === undefined) {
      return found.length > 0 ? 'the key is PCR-bound, no PCR policy was asked for' : undefined
    }
    if (found.length === 0) return 'the key is not PCR-bound, a PCR policy was asked for'
    // A key made before ADR 0094 still fits (kept, reported without rollback protection).
    return policyKind(found, init.pcrPolicy.authKey) !== undefined
      ? undefined
      : "the key is bound to another owner's authorizing key (other paper words)"
  }

  async function evict(): Promise<void> {
    await withFlushRetry(() =>
      runTpm2Tool(tools, 'tpm2_evictcontrol', ['-C', 'o', '-c', handleText, '-Q'], {
        op: 'provision',
      }),
    )
    init.logger?.warn('keyguard: evicted the TPM wrapping key at the handle (init --force)', {
      handle: handleText,
    })
  }

  async function loadKey(): Promise<LoadedKey> {
    return mutex.run(async () => {
      let loaded: LoadedKey
      try {
        loaded = await readPublic()
      } catch (err) {
        const empty =
          err instanceof TpmHandleError && (err.details.mismatched as unknown) === undefined
        if (empty && requireRecord) throw await pinnedKeyGone(err)
        if (!empty || !init.createIfMissing) throw err
        await provision()
        loaded = await readPublic()
      }
      const unfit = init.createIfMissing ? unfitness(loaded) : undefined
      if (unfit !== undefined) {
        if (init.replaceUnfitKey !== true) {
          throw new TpmPolicyError('The TPM key at the handle does not fit this node', {
            details: { reason: 'unfit-key', why: unfit, handle: handleText },
            hint: `Run init with --force to replace the key at ${handleText} (capsules wrapped to it then open only with its owner's paper words), or give the sealer another handle (sealer.handle in config.json).`,
          })
        }
        await evict()
        await provision()
        loaded = await readPublic()
      }
      await checkPin(loaded)
      return loaded
    })
  }

  /**
   * Compares the loaded key with the key record, or writes the record on first use. With
   * `createIfMissing` (init, recover: the owner is setting the key up) a record of another key
   * is replaced, with a warning; otherwise another key is refused.
   */
  async function checkPin(loaded: LoadedKey): Promise<void> {
    const file = init.keyRecordFile
    const authPolicy = loaded.tpmPublic?.authPolicy ?? new Uint8Array(0)
    if (file === undefined) {
      if (authPolicy.length > 0) throw unknownPolicy('no key record file')
      return
    }
    const record = await readRecordForPin(file)
    if (record === undefined && requireRecord) {
      throw new TpmSessionError('The record of the pinned TPM key is missing', {
        details: { reason: 'key-record-missing', handle: handleText, keyRecordFile: file },
        hint: `Restore ${file} from a backup (do not let the node pin whatever key the TPM shows now), or set the node up again from its paper words (executor-node init --force --mnemonic-file, pi-node recover).`,
      })
    }
    const name = loaded.tpmPublic === undefined ? undefined : hex(loaded.tpmPublic.name)
    const same =
      record !== undefined &&
      record.handle === handleText &&
      record.keyId === loaded.publicKey.keyId &&
      (record.name === undefined || name === undefined || record.name === name)
    if (record !== undefined && !same && !init.createIfMissing) {
      throw new TpmSessionError('The key at the TPM handle is not the key this node pinned', {
        details: {
          reason: 'key-substituted',
          handle: handleText,
          keyRecordFile: file,
          pinnedKeyId: record.keyId,
          foundKeyId: loaded.publicKey.keyId,
        },
        hint: 'Someone replaced the wrapping key (or the TPM). Do not re-pin: recover from the paper words onto a key you provision yourself.',
      })
    }
    // A PCR-bound key: its authPolicy must be PolicyAuthorize of the recorded (or given) key.
    // init/recover asking for another PCR set than the record's: theirs wins (they approve anew).
    const asked = init.createIfMissing ? init.pcrPolicy?.pcrs : undefined
    const samePcrs = (p: readonly number[] | undefined) =>
      asked === undefined || (p !== undefined && [...p].sort().join() === [...asked].sort().join())
    let policy = same && samePcrs(record.policy?.pcrs) ? record.policy : undefined
    if (policy === undefined && init.pcrPolicy !== undefined) {
      policy = {
        pcrs: [...(init.pcrPolicy.pcrs ?? DEFAULT_POLICY_PCRS)],
        authKey: init.pcrPolicy.authKey,
      }
    }
    if (authPolicy.length > 0) {
      if (policy === undefined) throw unknownPolicy('no policy in the key record')
      const kind = policyKind(authPolicy, policy.authKey)
      if (kind === undefined) throw unknownPolicy('the key record names another authorizing key')
      if ((kind === 'epoch') !== (policy.epochIndex !== undefined)) {
        // The record does not say what the key is (written by an older version, or lost and
        // rebuilt by init/recover): init/recover set it right; approvals start over.
        if (!init.createIfMissing)
          throw unknownPolicy('the key record and the key disagree on the epoch counter')
        policy = {
          pcrs: policy.pcrs,
          authKey: policy.authKey,
          ...(kind === 'epoch' ? { epochIndex: { handle: epochIndexFor(handle) } } : {}),
        }
      }
      loaded.policy = policy
    } else {
      policy = undefined
    }
    // A new key is proven to sit in a certified TPM before it is pinned (ADR 0097); a key
    // already pinned keeps what its record says, unless init/recover find it never checked.
    const keep = same && (record.ekActivation !== undefined || !init.createIfMissing)
    const ekActivation = keep ? record.ekActivation : await trustBeforePinning(loaded)
    if (ekActivation !== undefined) loaded.ekActivation = ekActivation
    // A record of this key without its public area (pinned before it was recorded, or through
    // tpm2-tools) is completed: the PCR reads an owner approves are salted to it (ADR 0089).
    const complete = record?.publicArea !== undefined || loaded.tpmPublic === undefined
    if (same && policy === record.policy && complete && ekActivation === record.ekActivation) return
    await writeKeyRecord(file, {
      ...(ekActivation === undefined ? {} : { ekActivation }),
      version: policy === undefined ? 1 : policy.epochIndex === undefined ? 2 : 3,
      ...(policy === undefined ? {} : { policy }),
      kind: TPM2_KEY_RECORD_KIND,
      handle: handleText,
      keyId: loaded.publicKey.keyId,
      ...(loaded.tpmPublic === undefined
        ? {}
        : {
            name: hex(loaded.tpmPublic.name),
            publicArea: hex(loaded.tpmPublic.publicArea),
          }),
    })
    const log = record === undefined || same ? init.logger?.info : init.logger?.warn
    log?.call(
      init.logger,
      record === undefined || same
        ? 'keyguard: pinned the TPM wrapping key'
        : 'keyguard: re-pinned the TPM wrapping key (init/recover onto a new key)',
      {
        handle: handleText,
        keyRecordFile: file,
      },
    )
  }

  /** ADR 0097: how the key about to be pinned is trusted, or undefined when not asked. */
  async function trustBeforePinning(loaded: LoadedKey): Promise<EkActivationRecord | undefined> {
    const asked = init.ekActivation
    if (asked === undefined) return undefined
    const key = loaded.tpmPublic
    if (transport === undefined || key === undefined) {
      // tpm2-tools path: no direct transport to run the activation over.
      if (asked.allowUnverified === true) return { verified: false, why: 'allowed' }
      if (emulated) return { verified: false, why: 'emulator' }
      throw new TpmIdentityError('This TPM transport cannot check the TPM before pinning', {
        details: { reason: 'no-direct-transport', tcti: init.tcti },
        hint: 'Use a device: or swtpm: TCTI, or pass --allow-unverified-tpm (recorded and shown as UNVERIFIED TPM).',
      })
    }
    const record = await withFlushRetry(() =>
      withChannel(transport, (send) =>
        trustKeyBeforePinning(send, { ...asked, handle, key, emulated }),
      ),
    )
    const log = record.verified ? init.logger?.info : init.logger?.warn
    log?.call(init.logger, `keyguard: ${ekActivationText(record)}`, { handle: handleText })
    return record
  }

  /**
   * The record to compare with. A record that does not parse is refused while serving (the
   * node must not re-pin whatever the TPM shows), but init/recover, where the owner sets the
   * key up again, move it aside and pin afresh rather than stay stuck (ADR 0089).
   */
  async function readRecordForPin(file: string) {
    try {
      return await readKeyRecord(file)
    } catch (err) {
      if (!(err instanceof KeyStoreCorruptError) || !init.createIfMissing) throw err
      const aside = `${file}.corrupt-${Date.now()}`
      await rename(file, aside)
      init.logger?.warn('keyguard: moved a corrupt TPM key record aside (init/recover re-pins)', {
        keyRecordFile: file,
        movedTo: aside,
        why: err.details.why,
      })
      return undefined
    }
  }

  /** The handle is empty on a node past its init: the key the record pins was evicted or the TPM cleared. */
  async function pinnedKeyGone(cause: unknown): Promise<TpmSessionError> {
    const file = init.keyRecordFile as string
    const record = await readKeyRecord(file).catch(() => undefined)
    return new TpmSessionError('The TPM key this node pinned is gone', {
      details: {
        reason: 'pinned-key-gone',
        handle: handleText,
        keyRecordFile: file,
        ...(record ? { pinnedKeyId: record.keyId } : {}),
      },
      hint: 'The key was evicted or the TPM cleared: what was sealed to it opens no more. Do not provision a new key in its place by hand; set the node up again from its paper words (executor-node init --force --mnemonic-file, pi-node recover).',
      cause,
    })
  }

  function unknownPolicy(why: string): TpmPolicyError {
    return new TpmPolicyError('The TPM key has a policy this node does not know', {
      details: { reason: 'unknown-policy', why, handle: handleText },
      hint: 'Point the sealer at its key record (tpm2-key.json), or recover from the paper words onto a new key.',
    })
  }

  async function publicKey(): Promise<SealerPublicKey> {
    return (await loaded()).publicKey
  }

  function loaded(): Promise<LoadedKey> {
    if (!cached) {
      cached = loadKey()
      // A failed lookup is not cached: the TPM may come back.
      cached.catch(() => {
        cached = undefined
      })
    }
    return cached
  }

  async function decrypt(key: LoadedKey, ciphertext: Uint8Array): Promise<Uint8Array> {
    if (transport !== undefined && key.tpmPublic !== undefined) {
      const saltKey = { handle, public: key.tpmPublic }
      if (key.policy !== undefined) {
        // The approval may have changed since the key was loaded (key-policy authorize).
        const approval = (await readKeyRecord(init.keyRecordFile as string))?.policy?.approval
        if (approval === undefined) {
          throw new TpmPolicyError('No PCR set is authorized for the TPM key yet', {
            details: { reason: 'not-authorized', handle: handleText },
            hint: 'Authorize the current PCR values with the paper words: pi-node key-policy authorize.',
          })
        }
        return withFlushRetry(() =>
          rsaDecryptInSession(transport, saltKey, ciphertext, { approval }),
        )
      }
      return withFlushRetry(() => rsaDecryptInSession(transport, saltKey, ciphertext))
    }
    const args = ['-c', handleText, '-s', 'oaep']
    const result = await withFlushRetry(() =>
      runTpm2Tool(tools, 'tpm2_rsadecrypt', args, { op: 'unwrap', input: ciphertext }),
    )
    return result.stdout
  }

  return {
    publicKey,

    async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
      return wrapWithPublicKey(await publicKey(), dataKey)
    },

    async unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
      // Before the key is even read: nothing goes to the TPM over a transport that would
      // carry the answer in clear.
      if (transport === undefined && init.allowUnencryptedTransport !== true) {
        throw new SealerRefusedError('This TPM transport would carry the data key in clear', {
          details: { reason: 'unencrypted-transport', tcti: init.tcti, unwrapVia },
          hint: 'Use a swtpm: or device: TCTI (encrypted session), or set allowUnencryptedTransport (DIGICAP_ALLOW_UNENCRYPTED_TPM=1) if the bus is trusted.',
        })
      }
      const key = await loaded()
      const pub = key.publicKey
      if (wrapped?.scheme !== SCHEME || wrapped.keyId !== pub.keyId) {
        throw new UnwrapError('The wrapped key is not for this TPM key', {
          details: { scheme: wrapped?.scheme, keyId: wrapped?.keyId, expectedKeyId: pub.keyId },
        })
      }
      if (
        !(wrapped.ciphertext instanceof Uint8Array) ||
        wrapped.ciphertext.length !== RSA_CIPHERTEXT_LENGTH
      ) {
        throw new UnwrapError('Wrapped key ciphertext has the wrong length', {
          details: { length: wrapped.ciphertext?.length, expected: RSA_CIPHERTEXT_LENGTH },
        })
      }
      return mutex.run(() => decrypt(key, wrapped.ciphertext))
    },

    async describe(): Promise<SealerDescription> {
      const key = await loaded()
      const pub = key.publicKey
      const unverified = key.ekActivation?.verified === false && key.ekActivation.why === 'allowed'
      return {
        kind: 'tpm2',
        scheme: SCHEME,
        keyId: pub.keyId,
        hardwareBacked: !emulated,
        ...(emulated
          ? { warning: 'INSECURE: the TPM is a software emulator (swtpm); use it only for tests.' }
          : unverified
            ? {
                warning:
                  'UNVERIFIED TPM: the wrapping key was pinned without proving it sits in a genuine TPM (--allow-unverified-tpm); someone on the TPM bus at init could have pinned his own key.',
              }
            : {}),
        details: {
          tcti: init.tcti,
          handle: handleText,
          unwrapVia,
          // What protects the data key on the bus between this process and the TPM.
          session:
            unwrapVia === 'direct'
              ? 'salted HMAC session, response encrypted (AES-128-CFB)'
              : init.allowUnencryptedTransport === true
                ? 'NONE: tpm2-tools path, the data key crosses the bus in clear (allowed)'
                : 'NONE: tpm2-tools path; unwrap refused (allowUnencryptedTransport is off)',
          pinned: init.keyRecordFile ?? 'in memory (no key record file)',
          // ADR 0097: was the pinned key proven to sit in a TPM its maker certified?
          ...(init.keyRecordFile === undefined
            ? {}
            : { tpmIdentity: ekActivationText(key.ekActivation) }),
          // ADR 0094: does a replayed old approval still unwrap?
          ...(key.policy === undefined
            ? {}
            : {
                rollbackProtection:
                  key.policy.epochIndex === undefined
                    ? `NONE: every PCR approval ever signed stays valid, so an old approved system booted again unwraps (a key made before ADR 0094). ${REPROVISION_HINT}`
                    : `NV epoch counter 0x${key.policy.epochIndex.handle.toString(16).padStart(8, '0')}: only the newest approval unwraps`,
              }),
          // A key made before ADR 0089 stops unwrapping while the TPM is in lockout.
          ...(key.tpmPublic === undefined
            ? {}
            : {
                dictionaryAttack:
                  key.tpmPublic.objectAttributes & TPMA_OBJECT.noDA
                    ? 'exempt (noDA)'
                    : 'PROTECTED: a TPM lockout stops every unwrap (a key made before ADR 0089)',
              }),
        },
      }
    },
  }
}
