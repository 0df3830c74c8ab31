/**
 * The data key never crosses the wire between the keyguard and its TPM in clear: a real
 * release (anvil, libp2p on loopback, swtpm) with every byte sent to and received from the
 * TPM recorded through a wrapped transport. The same recorder sees the key in clear when the
 * old, session-less TPM2_RSA_Decrypt is sent (so it would catch a regression), and a key
 * substituted at the handle after init makes the keyguard refuse with TPM_SESSION.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Send, type TpmTransport, transportFor } from '@digicap/tpm'
import type { Libp2p } from '@libp2p/interface'
import { getBytes, hexlify, randomBytes } from 'ethers'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard, TpmSessionError, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { rsaDecryptDirect } from '../src/tpm2/direct.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  requestAccess,
  setupChain,
  storeKey,
  until,
} from './helpers/world.ts'

const HANDLE = 0x81000010

/** Keeps a copy of every byte sent to and received from the TPM, channels included. */
function recording(inner: TpmTransport, wire: Uint8Array[]): TpmTransport {
  const record =
    (send: Send): Send =>
    async (command) => {
      wire.push(command.slice())
      const response = await send(command)
      wire.push(response.slice())
      return response
    }
  return {
    kind: inner.kind,
    target: inner.target,
    send: record((c) => inner.send(c)),
    async open() {
      const channel = await (inner.open as () => ReturnType<NonNullable<TpmTransport['open']>>)()
      return { send: record((c) => channel.send(c)), close: () => channel.close() }
    },
  }
}

const contains = (wire: Uint8Array[], needle: Uint8Array) =>
  wire.some((b) => Buffer.from(b).indexOf(Buffer.from(needle)) >= 0)
/** A command with this command code was recorded (commands sit at even places). */
const sentCommand = (wire: Uint8Array[], code: number) =>
  wire.some((b, i) => i % 2 === 0 && b.length >= 10 && Buffer.from(b).readUInt32BE(6) === code)

let chain: Chain
let swtpm: Swtpm
let kgNode: Libp2p
let exec: ExecutorSide
let parts: KeyguardParts
let keyguard: Keyguard | undefined
let recordDir: string
const wire: Uint8Array[] = []
const dataKey = getBytes(randomBytes(32))

beforeAll(async () => {
  ;[chain, swtpm, kgNode, exec] = await Promise.all([
    setupChain(),
    startSwtpm(),
    createNode(),
    executorSide(),
  ])
  recordDir = await mkdtemp(join(tmpdir(), 'kg-pin-'))
  await registerExecutor(chain, chain.executor, exec.node)
  const transport = recording(transportFor(swtpm.tcti, 20_000) as TpmTransport, wire)
  const sealer = tpm2Sealer({
    tcti: swtpm.tcti,
    createIfMissing: true,
    keyRecordFile: join(recordDir, 'tpm2-key.json'),
    transport,
    logger: quietLogger,
  })
  parts = await keyguardParts(undefined, sealer)
  const capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, dataKey)
  await kgNode.peerStore.merge(exec.node.peerId, { multiaddrs: exec.node.getMultiaddrs() })
  keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
  })({ ...parts, chain: chainClientFor(chain), libp2p: kgNode, logger: quietLogger })
  await keyguard.start()
  wire.length = 0
  const grantId = await requestAccess(chain, capsuleId, exec.newEphemeral())
  await keyguard.poll()
  await until(() => exec.received.has(grantId), 30_000)
  expect(hexlify(exec.received.get(grantId) as Uint8Array)).toBe(hexlify(dataKey))
}, 120_000)

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([kgNode?.stop(), exec?.stop(), chain?.anvil.stop(), swtpm?.stop()])
  await parts?.cleanup()
  if (recordDir) await rm(recordDir, { recursive: true, force: true })
})

describe('encrypted TPM session during a release (swtpm)', () => {
  it('the data key is in none of the bytes exchanged with the TPM', () => {
    // The release went through the TPM: a StartAuthSession and an RSA_Decrypt were recorded…
    expect(sentCommand(wire, 0x176)).toBe(true)
    expect(sentCommand(wire, 0x159)).toBe(true)
    // …and the data key appears in none of the recorded bytes.
    expect(contains(wire, dataKey)).toBe(false)
  })

  it('control: the same recorder sees the data key of a session-less TPM2_RSA_Decrypt', async () => {
    const record: Uint8Array[] = []
    const wrapped = await parts.sealer.wrap(dataKey)
    const plain = await rsaDecryptDirect(
      recording(transportFor(swtpm.tcti, 20_000) as TpmTransport, record),
      HANDLE,
      wrapped.ciphertext,
    )
    expect(hexlify(plain)).toBe(hexlify(dataKey))
    expect(contains(record, dataKey)).toBe(true)
  })

  it('a key substituted at the handle after init: TPM_SESSION, nothing unwrapped', async () => {
    const wrapped = await parts.sealer.wrap(dataKey)
    // Someone with owner access replaces the key at the handle with one of their own.
    const tools = (args: string[]) =>
      execa(args[0] as string, args.slice(1), { env: { TPM2TOOLS_TCTI: swtpm.tcti } })
    await tools(['tpm2_evictcontrol', '-C', 'o', '-c', '0x81000010'])
    const ctx = join(recordDir, 'evil.ctx')
    await tools([
      'tpm2_createprimary',
      '-C',
      'o',
      '-G',
      'rsa2048:oaep-sha256:null',
      '-a',
      'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt',
      '-c',
      ctx,
      '-Q',
    ])
    await tools(['tpm2_evictcontrol', '-C', 'o', '-c', ctx, '0x81000010', '-Q'])
    await tools(['tpm2_flushcontext', '-t'])
    // The running sealer salts to the pinned key: the substitute cannot open the salt.
    const live = await parts.sealer.unwrap(wrapped).catch((e: unknown) => e)
    expect(live).toBeInstanceOf(TpmSessionError)
    expect((live as TpmSessionError).details.reason).toBe('salt-refused')
    // A restarted sealer with the key record refuses the key before any session.
    const restarted = tpm2Sealer({
      tcti: swtpm.tcti,
      keyRecordFile: join(recordDir, 'tpm2-key.json'),
      logger: quietLogger,
    })
    const err = await restarted.unwrap(wrapped).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmSessionError)
    expect((err as TpmSessionError).code).toBe('TPM_SESSION')
    expect((err as TpmSessionError).details.reason).toBe('key-substituted')
  })
})
