/**
 * What an operator sees of a real release: `pnpm demo --json --keep` (real anvil, swtpm,
 * helia/libp2p, every node its own process, DIGICAP_LOG_LEVEL=debug) runs seal → grant → run
 * by both paths and a refused third run, then leaves its pi-node serving. Then:
 * - its `/metrics` holds the releases it served and refused, the fast-path latency, the TPM
 *   unwraps; `/healthz` is ok;
 * - the status page in Debian's chromium (playwright-core, never a downloaded browser) shows
 *   the sealed capsule and the releases, updates live on a refusal, shows a hostile capsule
 *   name as text, and refuses a wrong token;
 * - after Ctrl-C, no log of any process holds the owner's words, the executors' words, a
 *   private key or the capsule's data key.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createKeyStore, deriveOwnerIdentity, unwrapWithRecoveryKey } from '@digicap/keyguard'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`
const DEMO = fileURLToPath(new URL('../bin/demo.js', import.meta.url))
const EXECUTOR_NODE = fileURLToPath(new URL('../../executor-node/dist/cli.js', import.meta.url))
const CHROMIUM = '/usr/bin/chromium'
const EVIL = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'

// biome-ignore lint/suspicious/noExplicitAny: the demo's JSON document
type Doc = Record<string, any>

let demo: ChildProcess
let exited: Promise<number | null>
let out = ''
let err = ''
let doc: Doc
let browser: Browser | undefined
const extraLogs: string[] = []

beforeAll(async () => {
  demo = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', DEMO, '--json', '--keep'],
    {
      env: { ...process.env, DIGICAP_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  demo.stdout?.on('data', (d) => {
    out += d
  })
  demo.stderr?.on('data', (d) => {
    err += d
  })
  exited = new Promise((resolve) => demo.once('close', resolve))
  const deadline = Date.now() + 240_000
  for (;;) {
    try {
      doc = JSON.parse(out)
      break
    } catch {
      // not whole yet
    }
    if (demo.exitCode !== null || Date.now() > deadline)
      throw new Error(`the demo did not print its document:\n${err.slice(-4000)}`)
    await new Promise((r) => setTimeout(r, 200))
  }
  expect(doc.ok, err.slice(-3000)).toBe(true)
}, 260_000)

afterAll(async () => {
  await browser?.close()
  if (demo && demo.exitCode === null) {
    demo.kill('SIGINT')
    await exited
  }
  if (doc?.tempDir) await rm(doc.tempDir, { recursive: true, force: true })
})

/** 1 when the demo ran its image capsule (one release served, one refused by maxRuns(1)), 0 when it skipped it. */
const imageRuns = (): number => (doc.image?.result === undefined ? 0 : 1)

describe('pnpm demo --keep: the pi-node an operator watches', () => {
  it('prints where the status page and the metrics are', () => {
    expect(doc.kept).toBe(true)
    expect(doc.ops.statusPage).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/status\?token=[0-9a-f]{64}$/)
    expect(doc.ops.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    expect(err).toContain(`pi-node status page ${doc.ops.statusPage}`)
  })

  it('/metrics shows the real releases, the refusal, the fast-path latency and TPM unwraps; /healthz is ok', async () => {
    const text = await (await fetch(doc.ops.metrics)).text()
    const value = (name: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `))
      return line === undefined ? undefined : Number(line.slice(name.length + 1))
    }
    expect(value('digicap_releases_served_total{path="chain"}')).toBe(1)
    expect(value('digicap_releases_served_total{path="fast"}')).toBe(1 + imageRuns())
    expect(value('digicap_releases_refused_total{path="fast",reason="policy-denied"}')).toBe(
      1 + imageRuns(),
    )
    expect(value('digicap_fast_path_latency_seconds_count')).toBe(1 + imageRuns())
    expect(value('digicap_fast_path_latency_seconds_sum')).toBeGreaterThan(0)
    // Each chain-path release unwraps in the (sw)TPM; the fast path too.
    expect(value('digicap_tpm_op_seconds_count{op="unwrap"}')).toBe(2 + imageRuns())
    expect(value('digicap_capsules_guarded')).toBe(1 + imageRuns())
    expect(value('digicap_grant_watcher_lag_blocks')).toBeGreaterThanOrEqual(0)
    expect(value('digicap_info{app="pi-node",version="0.0.0"}')).toBe(1)
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(0)

    const health = await fetch(doc.ops.healthz)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({
      ok: true,
      checks: { tpm: { ok: true }, chain: { ok: true }, keyguard: { ok: true } },
    })
  })

  it('the status page in chromium: the capsule, its releases, a live refusal, a hostile name as text; a wrong token is refused', async () => {
    expect(existsSync(CHROMIUM), 'apt-get install chromium').toBe(true)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    const page = await browser.newPage()
    const dialogs: string[] = []
    page.on('dialog', (d) => {
      dialogs.push(d.message())
      void d.dismiss()
    })
    const res = await page.goto(doc.ops.statusPage)
    expect(res?.status()).toBe(200)
    expect(new URL(page.url()).search).toBe('') // the token left the address bar
    const capsule = page.locator(`#capsules tr[data-cid="${doc.capsule.cid}"]`)
    // Polls with room for a loaded box (the default gives up after 1 s).
    await expect.poll(() => capsule.count(), { timeout: 15_000 }).toBe(1)
    expect(await capsule.locator('.runs').textContent()).toBe('2')
    const served = page.locator('#history tr[data-outcome="served"]')
    expect(await served.count()).toBe(2 + imageRuns())
    expect(await page.locator('#history').textContent()).toContain(
      'policy-denied: MAX_RUNS_REACHED',
    )
    await expect
      .poll(() => page.locator('#live').textContent(), { timeout: 15_000 })
      .toBe('live updates: on')

    // A capsule record whose name is markup (adopted capsules carry the sealer's metadata).
    const dataDir = join(doc.tempDir, 'pi-node')
    const keys = await createKeyStore(join(dataDir, 'keys'))
    const real = await keys.get(doc.capsule.capsuleId)
    await keys.put({
      capsuleId: `0x${'ee'.repeat(32)}`,
      wrappedKeys: real?.wrappedKeys ?? [],
      metadata: { cid: 'bafyhostile', policy: '0x0', name: EVIL },
    })
    // A fourth run by the fast path: the keyguard refuses it; the open page updates by itself.
    const serveFile = JSON.parse(readFileSync(join(dataDir, 'serve.json'), 'utf8'))
    const run = spawn(
      process.execPath,
      [
        '--disable-warning=ExperimentalWarning',
        EXECUTOR_NODE,
        'run',
        doc.capsule.cid,
        '--data-dir',
        join(doc.tempDir, 'executor-node'),
        '--keyguard-addr',
        serveFile.multiaddrs[0],
        '--fast',
        '--no-fallback',
        '--json',
      ],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, DIGICAP_LOG_LEVEL: 'debug' } },
    )
    let runLog = ''
    run.stdout.on('data', (d) => {
      runLog += d
    })
    run.stderr.on('data', (d) => {
      runLog += d
    })
    expect(await new Promise((r) => run.once('close', r))).toBe(1)
    extraLogs.push(runLog)
    await expect
      .poll(() => page.locator('#history tr[data-outcome="refused"]').count(), { timeout: 20_000 })
      .toBe(2 + imageRuns())
    const hostile = page.locator('#capsules tr[data-cid="bafyhostile"] td').nth(1)
    // arrived with the live update, no reload
    await expect.poll(() => hostile.count(), { timeout: 15_000 }).toBe(1)
    expect(await hostile.textContent()).toBe(EVIL)
    expect(await page.evaluate(() => (globalThis as { pwned?: unknown }).pwned)).toBeUndefined()
    expect(await page.locator('#capsules img, #capsules script').count()).toBe(0)
    expect(dialogs).toEqual([])

    // Another browser without the cookie: a wrong token, then none, then a forged cookie.
    const stranger = await browser.newContext()
    const other = await stranger.newPage()
    const origin = new URL(doc.ops.statusPage).origin
    const wrong = await other.goto(`${origin}/status?token=${'0'.repeat(64)}`)
    expect(wrong?.status()).toBe(401)
    expect(await other.content()).not.toContain(doc.capsule.cid)
    expect((await other.goto(`${origin}/status`))?.status()).toBe(401)
    await stranger.addCookies([
      { name: 'digicap_status', value: 'f'.repeat(64), url: `${origin}/status` },
    ])
    expect((await other.goto(`${origin}/status`))?.status()).toBe(401)
    await stranger.close()
  })

  it('after Ctrl-C: no log of any process holds a word, a private key or the data key', async () => {
    const dataDir = join(doc.tempDir, 'pi-node')
    const keys = await createKeyStore(join(dataDir, 'keys'))
    const record = await keys.get(doc.capsule.capsuleId)
    demo.kill('SIGINT')
    expect(await exited).toBe(130)
    const logs = join(doc.tempDir, 'logs')
    // The owner's words: printed once by `init --show-mnemonic-in-json`, its own document.
    const words: string = JSON.parse(
      readFileSync(join(logs, 'pi-node-init.out.log'), 'utf8').trim().split('\n').at(-1) as string,
    ).mnemonic
    // An executor's words are sealed on its disk; `init` shows them once on stderr, numbered.
    const wordsOf = (log: string): string => {
      const text = readFileSync(join(logs, `${log}.err.log`), 'utf8')
      const words = text.split('\n').flatMap((l) => /^\s*\d+\. ([a-z]+)$/.exec(l)?.slice(1) ?? [])
      if (words.length < 12) throw new Error(`no words in ${log}`)
      return words.join(' ')
    }
    const secrets: Record<string, string> = {}
    const people: [string, string][] = [
      ['owner', words],
      ['executor', wordsOf('executor-node-init')],
      ['receiver', wordsOf('receiver-init')],
    ]
    for (const [who, m] of people) {
      expect(m.split(' ').length).toBeGreaterThanOrEqual(12)
      secrets[`${who} words`] = m
      // Any three words in a row is a leak too.
      secrets[`${who} words (3)`] = m.split(' ').slice(5, 8).join(' ')
      const id = await deriveOwnerIdentity(m)
      secrets[`${who} ethereum key`] = hex(id.ethereumPrivateKey).slice(2)
      secrets[`${who} operator key`] = hex(id.operatorPrivateKey).slice(2)
      secrets[`${who} libp2p seed`] = hex(id.libp2pSeed).slice(2)
      secrets[`${who} recovery key`] = hex(id.recoveryKeyPair.privateKey).slice(2)
      if (who === 'owner') {
        const wrap = record?.wrappedKeys.find((w) => w.scheme === 'hpke-x25519-recovery')
        if (!wrap) throw new Error('no recovery wrap')
        const dataKey = await unwrapWithRecoveryKey(wrap, id.recoveryKeyPair.privateKey)
        expect(dataKey.byteLength).toBe(32)
        secrets['data key (hex)'] = hex(dataKey).slice(2)
        secrets['data key (base64)'] = Buffer.from(dataKey).toString('base64')
      }
    }
    const files = readdirSync(logs).filter((f) => f !== 'pi-node-init.out.log')
    expect(files).toContain('pi-node-serve.err.log')
    const texts: Record<string, string> = { 'demo stdout': out, 'demo stderr': err }
    for (const f of files) texts[f] = readFileSync(join(logs, f), 'utf8')
    extraLogs.forEach((t, i) => {
      texts[`run ${i}`] = t
    })
    // The logs are the real ones: the daemon logged the releases it served.
    expect(texts['pi-node-serve.err.log']).toContain('"message":"keyguard released"')
    const leaks: string[] = []
    for (const [file, text] of Object.entries(texts)) {
      const lower = text.toLowerCase()
      // `init` shows a node's new words once, on purpose (to write on paper): only there.
      const shownOnce = /-init\.(out|err)\.log$/.test(file)
      for (const [what, secret] of Object.entries(secrets)) {
        if (shownOnce && what.includes(' words')) continue
        if (lower.includes(secret.toLowerCase())) leaks.push(`${what} in ${file}`)
      }
    }
    expect(leaks).toEqual([])
  })
})
