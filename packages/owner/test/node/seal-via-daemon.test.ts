/**
 * `sealViaDaemon`, the CLI's side of the seal socket (ADR 0107), against a stand-in daemon on a
 * real unix socket (the cli-kit job socket with a spec that answers what a test needs: fault
 * injection). Which answers make the CLI seal itself, which are errors; what it never hands
 * over (a FIFO, a folder, a code seal) and that it never blocks on a FIFO with no writer.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { type JobSocketServer, serveJobSocket } from '@digicap/cli-kit/job-socket'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { SealSocketError } from '../../src/node/seal-socket-protocol.ts'
import { sealViaDaemon } from '../../src/node/seal-via-daemon.ts'

let dir: string
let file: string
let daemon: JobSocketServer | undefined
let asked = 0

/** A daemon on `dir` whose every job ends with `answer(request)` (thrown, or returned). */
async function standIn(
  answer: (req: Record<string, unknown>) => Promise<Record<string, unknown>>,
  closeTimeoutMs = 30_000,
) {
  daemon = await serveJobSocket(
    {
      name: 'seal',
      lockPrefix: 'digicap-test-seal',
      version: 1,
      code: 'SEAL_SOCKET',
      maxRequestBytes: 65536,
      error: (m, o) => new SealSocketError(m, o),
      hints: { inUse: '', pathTooLong: '' },
      parse: (req) => req,
      about: () => ({}),
      run: (req) => {
        asked++
        return answer(req)
      },
    },
    { dataDir: dir, closeTimeoutMs },
  )
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'owner-seal-via-daemon-'))
  file = join(dir, 'data.txt')
  await writeFile(file, 'hello\n')
})
afterEach(async () => {
  await daemon?.close()
  daemon = undefined
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('sealViaDaemon', () => {
  it('no daemon: undefined (seal here)', async () => {
    expect(await sealViaDaemon(dir, { file, policy: 'maxRuns(1)' })).toBeUndefined()
  })

  it("returns the daemon's result; sends the file's descriptor, dev and ino, and the receivers as hex", async () => {
    let seen: Record<string, unknown> = {}
    await standIn(async (req) => {
      seen = req
      return { capsuleId: '0x01' }
    })
    const publicKey = new Uint8Array(32).fill(7)
    const r = await sealViaDaemon(dir, {
      file,
      policy: 'maxRuns(1)',
      receivers: [{ publicKey, peerId: '12D3KooWtest' }],
      memoryLimit: 5,
    })
    expect(r).toEqual({ capsuleId: '0x01' })
    expect(seen.input).toMatchObject({ pid: process.pid })
    expect(typeof (seen.input as { ino: string }).ino).toBe('string')
    expect(seen.options).toEqual({
      policy: 'maxRuns(1)',
      receivers: [{ publicKey: `0x${'07'.repeat(32)}`, peerId: '12D3KooWtest' }],
      memoryLimit: 5,
    })
  })

  it('refusals with nothing sealed that this process can do better: undefined (seal here)', async () => {
    for (const reason of ['input-unreadable', 'busy', 'stopping', 'timeout', 'version']) {
      await standIn(async () => {
        throw new SealSocketError('refused', { details: { reason } })
      })
      expect(await sealViaDaemon(dir, { file, policy: 'maxRuns(1)' }), reason).toBeUndefined()
      await daemon?.close()
      daemon = undefined
    }
  })

  it("a wrong token, a malformed request, another file, and the seal's own errors are errors", async () => {
    for (const reason of ['token', 'malformed', 'input-changed', 'input-not-a-file']) {
      await standIn(async () => {
        throw new SealSocketError('refused', { details: { reason } })
      })
      const err = await sealViaDaemon(dir, { file, policy: 'maxRuns(1)' }).catch((e) => e)
      expect(err, reason).toBeInstanceOf(SealSocketError)
      expect(err.details.reason).toBe(reason)
      await daemon?.close()
      daemon = undefined
    }
    await standIn(async () => {
      throw new DigicapError('POLICY_CODE', 'the policy is not what was deployed', {
        details: { at: '0x02' },
      })
    })
    const err = await sealViaDaemon(dir, { file, policy: 'maxRuns(1)' }).catch((e) => e)
    expect(err).toBeInstanceOf(DigicapError)
    expect(err).toMatchObject({ code: 'POLICY_CODE', details: { at: '0x02' } })
  })

  it('never hands over a FIFO (and does not block on one with no writer), a folder, a code or image seal, or no policy', async () => {
    await standIn(async () => ({ capsuleId: '0x01' }))
    asked = 0
    const fifo = join(dir, 'pipe')
    execFileSync('mkfifo', [fifo])
    const started = Date.now()
    expect(await sealViaDaemon(dir, { file: fifo, policy: 'maxRuns(1)' })).toBeUndefined()
    expect(Date.now() - started).toBeLessThan(2000)
    expect(await sealViaDaemon(dir, { file: dir, policy: 'maxRuns(1)' })).toBeUndefined()
    expect(await sealViaDaemon(dir, { file: join(dir, 'missing'), policy: 'x' })).toBeUndefined()
    expect(await sealViaDaemon(dir, { file, policy: '' })).toBeUndefined()
    for (const extra of [
      { runtime: 'quickjs', entry: 'main.js', code: dir },
      { code: dir },
      { image: dir },
    ]) {
      expect(await sealViaDaemon(dir, { file, policy: 'maxRuns(1)', ...extra })).toBeUndefined()
    }
    expect(asked).toBe(0)
  })

  it('the daemon gone mid-seal: SealSocketError closed', async () => {
    await standIn(() => new Promise(() => {}), 300)
    const pending = sealViaDaemon(dir, { file, policy: 'maxRuns(1)' }).catch((e) => e)
    await new Promise((r) => setTimeout(r, 200))
    const closing = daemon?.close()
    const err = await pending
    expect(err).toBeInstanceOf(SealSocketError)
    expect(err.details.reason).toBe('closed')
    daemon = undefined
    await closing
  })
})
