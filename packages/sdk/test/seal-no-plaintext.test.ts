/**
 * The SDK seal writes no plaintext to disk (it seals the bytes from memory).
 *
 * Review 119 (attacker): `sealAndPublish` of `@digicap/sdk/seal` takes the plaintext as bytes
 * in memory, yet writes it in the clear to `os.tmpdir()/digicap-seal-*​/plaintext` for the owner
 * pipeline, and removes it only in its own `try`/`catch`. A seal killed there (SIGKILL, OOM
 * killer, power loss, a container stop) leaves the caller's plaintext on disk for anyone who
 * reads that folder later. A real child process against the built package, killed for real; the
 * RPC answers `eth_chainId` and holds every other call (the deployment never completes).
 */
import { spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'

const SECRET = 'review-119 the owner’s secret, never to be written in the clear'
let server: Server
let rpcUrl: string
let tmp: string

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'review-119-sdk-tmp-'))
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', () => {
      const msg = JSON.parse(body) as { id: number; method: string }
      if (msg.method === 'eth_chainId')
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: '0x7a69' }))
      // anything else: no answer (the child is killed first)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
  await rm(tmp, { recursive: true, force: true })
})

it('a seal killed mid-way leaves no plaintext of the caller’s bytes on disk', async () => {
  const { publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  const card = {
    peerId: '12D3KooWAbcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTU',
    wrappingKey: { scheme: 'software-rsa-oaep-sha256', pem: publicKey },
    recoveryPublicKey: `0x${'22'.repeat(32)}`,
  }
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('./fixtures/seal-until-policy.mjs', import.meta.url)),
      JSON.stringify({ rpcUrl, card, data: SECRET }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } },
  )
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  )
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (String(d).includes('sealing')) resolve()
    })
    child.on('exit', (code) => reject(new Error(`the seal exited (${code}) early: ${stderr}`)))
  })
  child.kill('SIGKILL')
  expect(await exited).toBe('SIGKILL')

  // Every file the killed seal left under its TMPDIR, and whether one holds the plaintext.
  const left: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile() && readFileSync(p).includes(Buffer.from(SECRET))) left.push(p)
    }
  }
  if (existsSync(tmp)) walk(tmp)
  expect(left).toEqual([])
}, 120_000)
