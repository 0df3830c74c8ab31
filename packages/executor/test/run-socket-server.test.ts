/**
 * The daemon's run socket (ADR 0035) under the ways a local process can misuse it, on real unix
 * sockets, with a scripted executor (the runs themselves are tested elsewhere; here only what the
 * socket promises): one daemon per data folder even when two start at once or one was killed
 * with -9; `close()` waits for the clean-up of the runs it aborts; a CLI that stops reading
 * holds no slot and gets a bounded queue; a path too long for a unix socket and a link planted at
 * `run.token` are refused or replaced, never followed.
 */
import { spawn } from 'node:child_process'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import {
  encodeFrame,
  FrameReader,
  MAX_ANSWER_BYTES,
  RUN_SOCKET_VERSION,
  type RunAnswer,
  runSocketPaths,
  runViaDaemon,
  serveRunSocket,
} from '../src/node/run-socket/index.ts'

type Stub = Parameters<typeof serveRunSocket>[0]
type StubRun = Stub['runCapsule']

const folders: string[] = []
const servers: { close(): Promise<void> }[] = []
function folder(name = 'digicap-run-socket-'): string {
  const dir = mkdtempSync(join(tmpdir(), name))
  folders.push(dir)
  return dir
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
  for (const f of folders.splice(0)) rmSync(f, { recursive: true, force: true })
})

const stub = (runCapsule: StubRun): Stub => ({ runCapsule })
const answering = (name: string): Stub =>
  stub(async (cid) => ({ cid, by: name }) as unknown as Awaited<ReturnType<StubRun>>)

async function serve(dataDir: string, executor: Stub, init: object = {}) {
  const s = await serveRunSocket(executor, { dataDir, ...init })
  servers.push(s)
  return s
}

/** A raw client: sends the request with the folder's token; frames as they come. */
function rawClient(dataDir: string, cid = 'bafy-test') {
  const token = readFileSync(runSocketPaths(dataDir).token, 'utf8').trim()
  const sock: Socket = connect(runSocketPaths(dataDir).socket)
  const frames: RunAnswer[] = []
  const reader = new FrameReader(MAX_ANSWER_BYTES)
  sock.on('data', (chunk: Buffer) => frames.push(...(reader.push(chunk) as RunAnswer[])))
  sock.on('error', () => {})
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  const send = () => sock.write(encodeFrame({ v: RUN_SOCKET_VERSION, token, cid, options: {} }))
  return { sock, frames, closed, send }
}

const until = async (test: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms
  while (!test()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('run socket: one daemon per data folder', () => {
  it('two daemons starting at once: one serves, the other is refused in-use, and the token is the one that answers', async () => {
    for (let round = 0; round < 12; round++) {
      const dir = folder()
      const tries = await Promise.allSettled([
        serveRunSocket(answering('a'), { dataDir: dir }),
        serveRunSocket(answering('b'), { dataDir: dir }),
      ])
      const won = tries.filter((t) => t.status === 'fulfilled')
      const lost = tries.filter((t) => t.status === 'rejected')
      expect(won).toHaveLength(1)
      servers.push((won[0] as PromiseFulfilledResult<{ close(): Promise<void> }>).value)
      expect((lost[0] as PromiseRejectedResult).reason).toMatchObject({
        code: 'RUN_SOCKET',
        details: { reason: 'in-use' },
      })
      const winner = tries[0]?.status === 'fulfilled' ? 'a' : 'b'
      // a CLI reads the token and is answered by the daemon that wrote it
      expect(await runViaDaemon(dir, 'bafy-x', {})).toEqual({ cid: 'bafy-x', by: winner })
      await servers.pop()?.close()
      // closed: the folder is free again
      await serve(dir, answering('c'))
      expect(await runViaDaemon(dir, 'bafy-y', {})).toEqual({ cid: 'bafy-y', by: 'c' })
      await servers.pop()?.close()
    }
  })

  it('a daemon killed with -9 leaves no lock: the next one takes the folder and replaces its socket', async () => {
    const dir = folder()
    const server = fileURLToPath(new URL('../src/node/run-socket/server.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { serveRunSocket } = await import(${JSON.stringify(server)})
await serveRunSocket({ runCapsule: async () => ({}) }, { dataDir: ${JSON.stringify(dir)} })
console.log('ready')`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve())
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)))
    })
    await expect(serveRunSocket(answering('late'), { dataDir: dir })).rejects.toMatchObject({
      details: { reason: 'in-use', answers: true },
    })
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    // its socket file and token are still there; the lock went with the process
    expect(lstatSync(runSocketPaths(dir).socket).isSocket()).toBe(true)
    await serve(dir, answering('next'))
    expect(await runViaDaemon(dir, 'bafy-z', {})).toEqual({ cid: 'bafy-z', by: 'next' })
  })
})

describe('run socket: another daemon’s files', () => {
  it('a dead daemon’s token is gone before the new socket answers: a CLI never reads it', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = folder()
      const { socket, token } = runSocketPaths(dir)
      writeFileSync(token, 'ab'.repeat(32), { mode: 0o600 })
      let seenOld = false
      let probing = true
      const probe = (async () => {
        while (probing) {
          const up = await new Promise<boolean>((resolve) => {
            const s = connect(socket)
            s.once('connect', () => {
              s.destroy()
              resolve(true)
            })
            s.once('error', () => resolve(false))
          })
          if (up) {
            const held = (() => {
              try {
                return readFileSync(token, 'utf8')
              } catch {
                return ''
              }
            })()
            if (held === 'ab'.repeat(32)) seenOld = true
            return
          }
        }
      })()
      await serve(dir, answering('fresh'))
      await probe
      probing = false
      expect(seenOld).toBe(false)
      await servers.pop()?.close()
    }
  })

  it('close() leaves a socket file and a token that are not its own (another daemon’s since)', async () => {
    const dir = folder()
    const first = await serveRunSocket(answering('first'), { dataDir: dir })
    const { socket, token } = runSocketPaths(dir)
    // the files now belong to someone else (a daemon that took them in another namespace)
    rmSync(socket)
    rmSync(token)
    const other = createServer((s) => s.destroy())
    await new Promise<void>((r) => other.listen(socket, () => r()))
    writeFileSync(token, 'cd'.repeat(32), { mode: 0o600 })
    await first.close()
    expect(lstatSync(socket).isSocket()).toBe(true)
    expect(readFileSync(token, 'utf8')).toBe('cd'.repeat(32))
    await new Promise<void>((r) => other.close(() => r()))
  })
})

describe('run socket: stopping and slow clients', () => {
  it('close() aborts a run in progress and returns only after its clean-up; a request sent meanwhile is refused stopping', async () => {
    const dir = folder()
    let started = false
    let cleaned = false
    const slowCleanup = stub(
      (_cid, options) =>
        new Promise((_resolve, reject) => {
          started = true
          options?.signal?.addEventListener('abort', () => {
            // a workspace, keys, PCR 23: clean-up takes a while after the abort
            setTimeout(() => {
              cleaned = true
              reject(Object.assign(new Error('aborted'), { code: 'ABORTED' }))
            }, 300)
          })
        }),
    )
    const s = await serve(dir, slowCleanup)
    const running = runViaDaemon(dir, 'bafy-slow', {}).catch((e: unknown) => e)
    await until(() => started)
    const late = rawClient(dir)
    await new Promise((r) => late.sock.once('connect', r))
    const closing = s.close()
    late.send()
    await closing
    expect(cleaned).toBe(true)
    await late.closed
    expect(late.frames[0]).toMatchObject({ type: 'error', details: { reason: 'stopping' } })
    expect(await running).toMatchObject({ code: 'ABORTED' })
    expect(() => lstatSync(runSocketPaths(dir).socket)).toThrow()
    expect(() => lstatSync(runSocketPaths(dir).token)).toThrow()
  })

  it('CLIs that stop reading hold no slot past lingerMs, and what waits for them stays bounded', async () => {
    const dir = folder()
    let ended = 0
    const chatty = stub(async (cid, options) => {
      // 20 000 progress lines of ~1 KiB, then the result
      for (let i = 0; i < 20_000; i++)
        options?.onFetchProgress?.({ bytes: i, note: 'x'.repeat(1000) } as never)
      ended++
      return { cid } as never
    })
    await serve(dir, chatty, { maxConnections: 2, lingerMs: 1500 })
    const stuck = [rawClient(dir), rawClient(dir)]
    for (const c of stuck) {
      await new Promise((r) => c.sock.once('connect', r))
      c.sock.pause() // a CLI suspended with Ctrl-Z: it never reads, never closes
      c.send()
    }
    await until(() => ended === 2)
    // their runs are over but they still hold both slots…
    await expect(runViaDaemon(dir, 'bafy-early', {})).rejects.toMatchObject({
      details: { reason: 'busy' },
    })
    // …until the linger passes and the daemon cuts them
    await new Promise((r) => setTimeout(r, 1800))
    expect(await runViaDaemon(dir, 'bafy-third', {})).toEqual({ cid: 'bafy-third' })
    for (const c of stuck) c.sock.destroy()
    // A slow reader that comes back in time gets its result, and far fewer than 20 000 lines.
    const slow = rawClient(dir)
    await new Promise((r) => slow.sock.once('connect', r))
    slow.sock.pause()
    slow.send()
    await new Promise((r) => setTimeout(r, 150))
    slow.sock.resume()
    await slow.closed
    const progress = slow.frames.filter((f) => f.type === 'progress').length
    expect(slow.frames.at(-1)).toMatchObject({ type: 'result', result: { cid: 'bafy-test' } })
    expect(progress).toBeLessThan(2000)
  })
})

describe('run socket: the files it makes', () => {
  it('a data folder whose socket path is too long: a typed refusal, and no token or socket left', async () => {
    const base = folder()
    const dir = join(base, 'd'.repeat(Math.max(1, 100 - base.length)))
    mkdirSync(dir)
    expect(Buffer.byteLength(runSocketPaths(dir).socket)).toBeGreaterThan(107)
    await expect(serveRunSocket(answering('x'), { dataDir: dir })).rejects.toMatchObject({
      code: 'RUN_SOCKET',
      details: { reason: 'path-too-long' },
    })
    expect(() => lstatSync(runSocketPaths(dir).token)).toThrow()
    expect(() => lstatSync(runSocketPaths(dir).socket)).toThrow()
    // and the folder is not locked by the failed start
    const short = folder()
    await serve(short, answering('y'))
  })

  it('a link planted at run.token is replaced, never written through', async () => {
    const dir = folder()
    const victim = join(folder('digicap-victim-'), 'precious')
    writeFileSync(victim, 'precious', { mode: 0o644 })
    symlinkSync(victim, runSocketPaths(dir).token)
    await serve(dir, answering('t'))
    expect(readFileSync(victim, 'utf8')).toBe('precious')
    expect(lstatSync(victim).mode & 0o777).toBe(0o644)
    const token = lstatSync(runSocketPaths(dir).token)
    expect(token.isFile()).toBe(true)
    expect(token.mode & 0o777).toBe(0o600)
    expect(await runViaDaemon(dir, 'bafy-t', {})).toEqual({ cid: 'bafy-t', by: 't' })
  })
})
