/**
 * The data key never crosses the wire between the keyguard and its TPM in clear: a real
 * release (anvil, libp2p on loopback, swtpm) with every byte sent to and received from the
 * TPM recorded through a wrapped transport. The same recorder sees the key in clear when the
 * old, session-less TPM2_RSA_Decrypt is sent (so it would catch a regression), and a key
 * substituted at the handle after init makes the keyguard refuse with TPM_SESSION.
 */
import { join } from 'node:path'
import { type Send, type TpmTransport, transportFor } from '@digicap/tpm'
import { getBytes, hexlify, randomBytes } from 'ethers'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TpmSessionError, tpm2Sealer } from '../src/index.ts'
import type { Swtpm } from '../src/testing.ts'
import { rsaDecryptDirect } from '../src/tpm2/direct.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { quietLogger, requestAccess, until } from './helpers/world.ts'

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

let w: KeyguardWorld
let swtpm: Swtpm
/** The sealer's key record and the substitute key's context: in the keyguard's data dir. */
let recordDir: string
const wire: Uint8Array[] = []
const dataKey = getBytes(randomBytes(32))

beforeAll(async () => {
  w = await keyguardWorld({
    swtpm: true,
    sealer: (tpm, dir) =>
      tpm2Sealer({
        tcti: (tpm as Swtpm).tcti,
        createIfMissing: true,
        keyRecordFile: join(dir, 'tpm2-key.json'),
        transport: recording(transportFor((tpm as Swtpm).tcti, 20_000) as TpmTransport, wire),
        logger: quietLogger,
      }),
    dataKey,
    keyguard: { pollIntervalMs: 600_000 },
    keyguardDialsExecutor: true,
  })
  swtpm = w.swtpm as Swtpm
  recordDir = w.parts.dir
  wire.length = 0
  const grantId = await requestAccess(w.chain, w.capsuleId, w.exec.newEphemeral())
  await w.keyguard.poll()
  await until(() => w.exec.received.has(grantId), 30_000)
  expect(hexlify(w.exec.received.get(grantId) as Uint8Array)).toBe(hexlify(dataKey))
}, 120_000)

afterAll(() => w?.stop())

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
    const wrapped = await w.parts.sealer.wrap(dataKey)
    const plain = await rsaDecryptDirect(
      recording(transportFor(swtpm.tcti, 20_000) as TpmTransport, record),
      HANDLE,
      wrapped.ciphertext,
    )
    expect(hexlify(plain)).toBe(hexlify(dataKey))
    expect(contains(record, dataKey)).toBe(true)
  })

  it('a key substituted at the handle after init: TPM_SESSION, nothing unwrapped', async () => {
    const wrapped = await w.parts.sealer.wrap(dataKey)
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
    const live = await w.parts.sealer.unwrap(wrapped).catch((e: unknown) => e)
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
