/**
 * A code seal killed mid-way leaves no plaintext: its bundle is named as a temp file that the
 * next node opened removes (its writer's pid is gone).
 *
 * Review 119 (attacker): `pi-node seal` of a code capsule writes the plaintext bundle (the
 * owner's data and code, in the clear) to `capsules/<id>/bundle.partial` and removes it only in
 * its own `finally`. A seal killed there (SIGKILL, OOM killer, the Pi losing power) leaves it,
 * and the node's crash clean-up (`removeLeftoverTemps`, run by every `createOwnerNode`) keeps it:
 * the plaintext stays on the SD card for good, next to the capsule that was meant to hide it.
 * A real anvil (contracts deployed by `initOwnerNode`), the software sealer, a real child
 * process killed for real.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createOwnerNode, initOwnerNode, loadOwnerNodeConfig } from '../../src/node/index.ts'

const SECRET = 'review-119 the owner’s data, never to be left in the clear'
let anvil: Anvil
let dir: string
let dataDir: string

beforeAll(async () => {
  anvil = await startAnvil()
  dir = await mkdtemp(join(tmpdir(), 'review-119-bundle-'))
  dataDir = join(dir, 'node')
  await initOwnerNode({
    dataDir,
    rpcUrl: anvil.rpcUrl,
    sealer: { kind: 'software', keyFile: join(dataDir, 'sealer.pem'), allowInsecure: true },
    deploy: true,
    listen: ['/ip4/127.0.0.1/tcp/0'],
  })
}, 240_000)

afterAll(async () => {
  await anvil?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

it('a code seal killed mid-way leaves no plaintext bundle once the node is opened again', async () => {
  const file = join(dir, 'data.txt')
  await writeFile(file, SECRET)
  const code = join(dir, 'code')
  await mkdir(code)
  await writeFile(join(code, 'main.js'), 'digicap.output(digicap.inputText())')
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('../fixtures/node-seal-until-policy.mjs', import.meta.url)),
      JSON.stringify({ dataDir, file, code }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
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
    child.on('exit', (c) => reject(new Error(`the seal exited (${c}) early: ${stderr}`)))
  })
  child.kill('SIGKILL')
  expect(await exited).toBe('SIGKILL')

  // The node opened again runs its crash clean-up; then no file under the data folder may
  // hold the plaintext.
  await createOwnerNode(await loadOwnerNodeConfig(dataDir))
  const holding: string[] = []
  for (const e of await readdir(dataDir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name)
    if (e.isFile() && readFileSync(p).includes(Buffer.from(SECRET))) holding.push(p)
  }
  expect(holding).toEqual([])
  expect(existsSync(dataDir)).toBe(true)
}, 240_000)
