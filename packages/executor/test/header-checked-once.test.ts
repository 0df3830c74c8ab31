/**
 * The capsule header's owner signature is checked once on the run path: the loader's check
 * gives capsule-core's proof (`LoadedCapsule.verified`), and the open — to the run's tmpfs file
 * or into memory — checks nothing again. Checks are counted on capsule-core's
 * `HEADER_SIGNATURE_CHANNEL`. A header changed after the loader's check (the parsed header the
 * open is given, or the capsule file it reads) is still refused by the open.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { readFile, writeFile } from 'node:fs/promises'
import {
  HEADER_SIGNATURE_CHANNEL,
  parseCapsuleHeader,
  verifiedCapsuleHeader,
} from '@digicap/capsule-core'
import { afterAll, describe, expect, it } from 'vitest'
import { memoryFsRoot, openPayloadToFile, openPayloadToMemory } from '../src/run/open-payload.ts'
import { capsuleFile } from './helpers/capsule-file.ts'
import { tempWorkspaces } from './helpers/temp-workspace.ts'

/** Capsule ids of the signature checks seen, as hex. */
const checked: string[] = []
const onCheck = (m: unknown) =>
  checked.push(Buffer.from((m as { capsuleId: Uint8Array }).capsuleId).toString('hex'))
subscribe(HEADER_SIGNATURE_CHANNEL, onCheck)
afterAll(() => unsubscribe(HEADER_SIGNATURE_CHANNEL, onCheck))
/** The checks of the capsule `capsuleId` made while `f` ran. */
async function checksDuring(capsuleId: Uint8Array, f: () => Promise<unknown>): Promise<number> {
  const id = Buffer.from(capsuleId).toString('hex')
  const before = checked.filter((c) => c === id).length
  await f()
  return checked.filter((c) => c === id).length - before
}

const shm = await memoryFsRoot(['/dev/shm'])
const workspace = tempWorkspaces('checked-once-')
const data = new Uint8Array(300_000).fill(5)

/** A capsule file and what the loader leaves of it: the parsed header and its proof. */
async function loaded() {
  const { ws, dir } = await workspace()
  const { src, dataKey, bytes } = await capsuleFile(dir, data)
  const verified = verifiedCapsuleHeader(src.parsed)
  return { ws, src, dataKey, bytes, verified, id: src.parsed.header.capsuleId }
}

describe.runIf(shm)('the open after the loader’s check', () => {
  it('to the tmpfs file: no check with the loader’s proof, one without it', async () => {
    const { ws, src, dataKey, verified, id } = await loaded()
    const open = (withProof: boolean) => () =>
      openPayloadToFile(withProof ? { ...src, verified } : src, dataKey, {
        dir: ws.tempDir('plaintext-', shm),
        workspace: ws,
      })
    let file: Awaited<ReturnType<ReturnType<typeof open>>> | undefined
    expect(
      await checksDuring(id, async () => {
        file = await open(true)()
      }),
    ).toBe(0)
    expect(await readFile(file?.path as string)).toEqual(Buffer.from(data))
    expect(await checksDuring(id, open(false))).toBe(1)
  })

  it('into memory: no check with the loader’s proof, one without it', async () => {
    const { src, dataKey, verified, id } = await loaded()
    const out = new Uint8Array(data.byteLength)
    expect(
      await checksDuring(id, () => openPayloadToMemory({ ...src, verified }, out, dataKey)),
    ).toBe(0)
    expect(out).toEqual(data)
    expect(await checksDuring(id, () => openPayloadToMemory(src, out, dataKey))).toBe(1)
  })

  it('a parsed header changed after the loader’s check: the open checks it and refuses it', async () => {
    const { ws, src, dataKey, verified, id } = await loaded()
    src.parsed.header.createdAt += 1
    const opening = checksDuring(id, () =>
      openPayloadToFile({ ...src, verified }, dataKey, {
        dir: ws.tempDir('plaintext-', shm),
        workspace: ws,
      }),
    )
    await expect(opening).rejects.toMatchObject({ code: 'CAPSULE_SIGNATURE' })
  })

  it('a capsule file whose signature changed after the loader’s check: refused into memory', async () => {
    const { src, dataKey, bytes, verified } = await loaded()
    const at = parseCapsuleHeader(bytes).payloadOffset - 30
    bytes[at] = (bytes[at] as number) ^ 1
    await writeFile(src.path, bytes)
    const out = new Uint8Array(data.byteLength)
    await expect(openPayloadToMemory({ ...src, verified }, out, dataKey)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })

  it('a capsule file whose signature changed after the loader’s check: refused to the tmpfs file', async () => {
    const { ws, src, dataKey, bytes, verified } = await loaded()
    const at = parseCapsuleHeader(bytes).payloadOffset - 30
    bytes[at] = (bytes[at] as number) ^ 1
    await writeFile(src.path, bytes)
    const opening = openPayloadToFile({ ...src, verified }, dataKey, {
      dir: ws.tempDir('plaintext-', shm),
      workspace: ws,
    })
    await expect(opening).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
      details: { reason: 'header-changed-after-check' },
    })
  })
})
