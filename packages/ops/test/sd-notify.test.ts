/**
 * Readiness: the datagram systemd would read. A fake NOTIFY_SOCKET (a unix datagram socket
 * bound by python3: Node has none) records what `systemd-notify` sends for the daemon.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { notifyReady, notifyStopping, sdNotify } from '../src/index.ts'

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            import array, os
            fds = array.array("i"); fds.frombytes(payload[: len(payload) - len(payload) % 4])
            for fd in fds: os.close(fd)  # the barrier: closing the fd releases systemd-notify
    with open(sys.argv[2], "a") as f:
        f.write(data.decode().replace("\\n", "|") + "\\n")
`

let dir: string
let socketPath: string
let received: string
let listener: ChildProcess

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sd-notify-'))
  socketPath = join(dir, 'notify.sock')
  received = join(dir, 'received')
  listener = spawn('python3', ['-c', LISTENER, socketPath, received], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve) => listener.stdout?.once('data', () => resolve()))
})
afterAll(async () => {
  listener?.kill()
  await rm(dir, { recursive: true, force: true })
})

const lines = async () =>
  existsSync(received) ? (await readFile(received, 'utf8')).split('\n') : []

describe('sdNotify', () => {
  it('without NOTIFY_SOCKET does nothing', async () => {
    expect(await notifyReady('serving', { env: {} })).toBe(false)
  })

  it('sends READY=1 with a status, then STOPPING=1, as datagrams on NOTIFY_SOCKET', async () => {
    const env = { PATH: process.env.PATH, NOTIFY_SOCKET: socketPath }
    expect(await notifyReady('serving as 12D3KooW', { env })).toBe(true)
    expect(await notifyStopping({ env })).toBe(true)
    const got = (await lines()).filter((l) => !l.startsWith('BARRIER=1') && l !== '')
    expect(got).toEqual(['READY=1|STATUS=serving as 12D3KooW', 'STOPPING=1'])
  })

  it('a missing systemd-notify or a bad field is a typed error', async () => {
    const env = { NOTIFY_SOCKET: socketPath }
    await expect(
      notifyReady('x', { env, binary: join(dir, 'no-such-binary') }),
    ).rejects.toMatchObject({ code: 'SD_NOTIFY', details: { code: 'ENOENT' } })
    await expect(sdNotify({ 'READY\nX': '1' }, { env })).rejects.toMatchObject({
      code: 'SD_NOTIFY',
    })
    await expect(sdNotify({ STATUS: 'a\nREADY=1' }, { env })).rejects.toMatchObject({
      code: 'SD_NOTIFY',
    })
  })
})
