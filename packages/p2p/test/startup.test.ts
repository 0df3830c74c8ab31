import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const entry = new URL('../src/index.ts', import.meta.url).href

// A fresh process (vitest's module graph would hide what a real start loads) that records every
// module it resolves while importing the package and starting and stopping a node.
const probe = `
import { registerHooks } from 'node:module'
const loaded = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r } })
const { createDigicapNode } = await import(${JSON.stringify(entry)})
const node = await createDigicapNode({ dht: true })
await node.stop()
console.log(JSON.stringify(loaded))
`

describe('start-up', () => {
  it('loads none of libp2p default set-up (WebRTC, AutoTLS, WebSockets, UPnP, HTTP) nor @helia/libp2p', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--no-warnings', '--input-type=module', '-e', probe],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 60_000 },
    )
    const loaded: string[] = JSON.parse(stdout.trim().split('\n').at(-1) as string)
    // the probe really saw the networking stack load
    expect(loaded.some((url) => url.includes('/node_modules/libp2p/'))).toBe(true)
    expect(loaded.some((url) => url.includes('/node_modules/@libp2p/kad-dht/'))).toBe(true)
    const unused = loaded.filter((url) =>
      /\/node_modules\/(@helia\/libp2p|@helia\/http|@libp2p\/(webrtc|websockets|upnp-nat|http|circuit-relay-v2|autonat|mdns)|@ipshipyard\/libp2p-auto-tls)\//.test(
        url,
      ),
    )
    expect(unused).toEqual([])
  }, 90_000)
})
