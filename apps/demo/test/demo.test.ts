/**
 * The demo end to end, as a user runs it: ONE real run shared by every check below
 * (test/helpers/demo-run.ts: `node bin/demo.js --json --keep`, DIGICAP_LOG_LEVEL=debug — a real
 * anvil, swtpm, helia and libp2p, every node its own process; its note says how to add checks).
 * In this order:
 * 1. What an operator sees while the nodes run: `/metrics` holds the releases served and
 *    refused, the fast-path latency, the TPM unwraps; `/healthz` is ok; the status page in
 *    Debian's chromium (playwright-core, never a downloaded browser) shows the sealed capsule
 *    and its releases, updates live on a refusal, shows a hostile capsule name as text, refuses
 *    a wrong token. Its last test is the Ctrl-C: then no log of any process holds the owner's
 *    words, the executors' words, a private key or the capsule's data key.
 * 2. The stopped demo: both paths' results against the aggregate computed here from the same
 *    CSV, the refusal's reason, the sealer, nothing left running; `pnpm demo` from the root
 *    prints the demo's output alone.
 * 3. Its data folder at rest: every file 0600, every folder 0700 (issue #18), every offender
 *    listed.
 * Checks of the RUNNING nodes go before the operator block; checks of the STOPPED demo after it.
 */
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectDigicap, connectSettlement } from '@digicap/contracts'
import { createKeyStore, deriveOwnerIdentity, unwrapWithRecoveryKey } from '@digicap/keyguard'
import { type EventLog, JsonRpcProvider } from 'ethers'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { statusPageLink } from '../../../packages/ops/src/status-link.ts'
import { looseModes } from '../../pi-node/test/helpers/file-modes.ts'
import { alive, expectedAggregate, onPath, runDemo, runPnpmDemo } from './helpers/demo-cli.ts'
import { type Doc, demoRun, removeDemo, stopDemo } from './helpers/demo-run.ts'

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`
const EXECUTOR_NODE = fileURLToPath(new URL('../../executor-node/dist/cli.js', import.meta.url))
const CSV = fileURLToPath(new URL('../capsule/salaries.csv', import.meta.url))
const CHROMIUM = '/usr/bin/chromium'
const EVIL = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'

// The demo stopped (if a check has not), its kept temp folder removed.
afterAll(removeDemo, 60_000)

describe('pnpm demo: the verifier committee, read back from the chain it left running', () => {
  // --keep: anvil outlives the document, so every claim of the committee step is checked
  // against chain state and the keyguard's journal here, not against the document's words.
  let doc: Doc
  let provider: JsonRpcProvider
  const swtpm = onPath('swtpm') && onPath('tpm2_createprimary')
  /** The step needs an executor TPM; without one a chain check fails loudly (never asserts nothing). */
  const needSwtpm = () => {
    if (!swtpm)
      throw new Error(
        'swtpm or tpm2_createprimary is not on PATH, so the demo skipped its committee step and this check cannot run: install swtpm, swtpm-tools and tpm2-tools (.ci/run does)',
      )
  }

  beforeAll(async () => {
    doc = (await demoRun()).doc
    if (doc.committee?.chain) provider = new JsonRpcProvider(doc.committee.chain.rpcUrl)
  }, 440_000)

  afterAll(() => provider?.destroy())

  const contracts = () => {
    const { addresses } = doc.committee.chain
    const c = connectDigicap(addresses, provider)
    return {
      hub: connectSettlement(addresses, provider).attestationHub,
      nodes: c.nodeRegistry,
      access: c.accessController,
    }
  }
  /** The hub's and registry's events of a job (its settlement block's registry events). */
  const eventsOf = async (jobId: string) => {
    const { hub, nodes } = contracts()
    const own = (await hub.queryFilter('*', 0)).filter(
      (l: unknown) => String((l as EventLog).args?.[0]).toLowerCase() === jobId.toLowerCase(),
    ) as EventLog[]
    const settled = own.find((l) => l.eventName === 'JobSettled')
    const registry = settled
      ? ((await nodes.queryFilter('*', settled.blockNumber, settled.blockNumber)) as EventLog[])
      : []
    return { own, settled, registry }
  }
  const journal = (grantId: string) =>
    JSON.parse(
      readFileSync(
        join(doc.committee.piDataDir, 'keyguard', 'journal', `${grantId.toLowerCase()}.json`),
        'utf8',
      ),
    ) as { state: string; reason?: string }

  it('runs with an executor TPM (else says it skipped)', () => {
    if (!swtpm) return expect(doc.committee.skipped).toBeTypeOf('string')
    expect(doc.committee.skipped).toBeUndefined()
    expect(doc.committee.honest.grantId).not.toBe(doc.committee.tampered.grantId)
  })

  it('the honest run: seated, before pass, key released, final pass, settled; executor and signers paid, reputations +1', async () => {
    needSwtpm()
    const { hub, nodes, access } = contracts()
    const { grantId } = doc.committee.honest
    const executor = doc.executor.address as string
    const job = await hub.jobs(grantId)
    expect(Number(job.status)).toBe(4) // Settled
    expect(Number(job.verdict)).toBe(7) // before, during, after passed
    expect(Number(job.before)).toBe(1) // the before round's pass, on chain
    // the grant is the demo executor's, and the committee pi-node's keyguard released its key
    const [granted] = await access.queryFilter(access.filters.AccessGranted!(grantId))
    expect(String((granted as EventLog).args.executor)).toBe(executor)
    expect(journal(grantId).state).toBe('completed')
    // the executor node counted, in its phase holds, the seats the hub gave: the four verifiers
    expect(doc.committee.honest.seatsCounted).toEqual(doc.committee.honest.verifierPeers)
    expect(doc.committee.honest.seatsCounted).toHaveLength(4)
    const { own, settled, registry } = await eventsOf(grantId)
    expect(own.map((l) => l.eventName)).toEqual(
      expect.arrayContaining([
        'JobOpened',
        'CommitteeSeated',
        'BeforeVerdict',
        'CertificateAccepted',
      ]),
    )
    expect(settled?.args.passed).toBe(true)
    const paid = own.find((l) => l.eventName === 'EscrowPaid') as EventLog
    expect(paid.args.toExecutor).toBeGreaterThan(0n)
    expect(paid.args.perSigner).toBeGreaterThan(0n)
    expect(await access.credits(executor)).toBeGreaterThanOrEqual(paid.args.toExecutor)
    // each signer (bit i of the ascending committee) credited and +1 reputation in that block
    const seated = own.find((l) => l.eventName === 'CommitteeSeated') as EventLog
    const committee = [...(seated.args.members as string[])].sort((a, b) =>
      BigInt(a) < BigInt(b) ? -1 : 1,
    )
    const signers = committee.filter((_, i) => (BigInt(job.signers) >> BigInt(i)) & 1n)
    expect(signers.length).toBeGreaterThanOrEqual(3)
    const raised = registry
      .filter((l) => l.eventName === 'ReputationChanged')
      .map((l) => [String(l.args.node), Number(l.args.current) - Number(l.args.previous)])
    for (const who of [executor, ...signers]) {
      expect(raised).toContainEqual([who, 1])
      expect(await access.credits(who)).toBeGreaterThan(0n)
    }
    for (const m of committee) expect(Number((await nodes.getNode(m)).roles) & 2).toBe(2)
  })

  it('the tampered executor: before fail by the committee, no key released, stake slashed, reputation lowered', async () => {
    needSwtpm()
    const { hub, nodes, access } = contracts()
    const { grantId, executor } = doc.committee.tampered
    const job = await hub.jobs(grantId)
    expect(Number(job.status)).toBe(4)
    expect(Number(job.before)).toBe(2) // fail
    expect(Number(job.verdict)).toBe(0)
    const [granted] = await access.queryFilter(access.filters.AccessGranted!(grantId))
    expect(String((granted as EventLog).args.executor)).toBe(executor)
    expect(executor).not.toBe(doc.executor.address)
    // the keyguard never sent the key: its journal closed the grant as refused
    const entry = journal(grantId)
    expect(entry.state).toBe('refused')
    expect(entry.reason).toMatch(/committee-fail/)
    const { settled, registry } = await eventsOf(grantId)
    expect(settled?.args.passed).toBe(false)
    const failSlash = await hub.failSlash()
    expect(settled?.args.executorSlashed).toBe(failSlash)
    const slashed = registry.find((l) => l.eventName === 'Slashed') as EventLog
    expect(String(slashed.args.node)).toBe(executor)
    expect(slashed.args.amount).toBe(failSlash)
    const node = await nodes.getNode(executor)
    expect(BigInt(doc.committee.tampered.stake.before) - node.stake).toBe(failSlash)
    const lowered = registry.find(
      (l) => l.eventName === 'ReputationChanged' && String(l.args.node) === executor,
    ) as EventLog
    expect(Number(lowered.args.current)).toBeLessThan(Number(lowered.args.previous))
    expect(Number(node.reputation)).toBe(Number(lowered.args.current))
    // every member saw the before-quote fail (the TPM-signed PCR 23 is not the claimed reset)
    for (const phases of doc.committee.tampered.phases as { phase: string; verdict: string }[][])
      expect(phases[0]).toEqual({ phase: 'before', verdict: 'QUOTE_EVENT_LOG' })
  })
})

describe('pnpm demo --keep: the pi-node an operator watches', () => {
  let doc: Doc
  let out = ''
  let err = ''
  let browser: Browser | undefined
  const extraLogs: string[] = []

  beforeAll(async () => {
    const run = await demoRun()
    doc = run.doc
    out = run.stdout()
    err = run.stderr()
  }, 440_000)

  afterAll(async () => {
    await browser?.close()
  })

  /** 1 when the demo ran its image capsule (one release served, one refused by maxRuns(1)), 0 when it skipped it. */
  const imageRuns = (): number => (doc.image?.result === undefined ? 0 : 1)

  it('prints where the status page and the metrics are', () => {
    expect(doc.kept).toBe(true)
    // No token in any printed link: `pi-node status` prints a one-time login link.
    expect(doc.ops.statusPage).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/status$/)
    expect(doc.ops.statusLogin).toBe(`pi-node status --data-dir ${join(doc.tempDir, 'pi-node')}`)
    expect(doc.ops.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    expect(err).toContain(
      `pi-node status page ${doc.ops.statusPage} (log in: ${doc.ops.statusLogin})`,
    )
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
    // The owner's login: the one-time link `pi-node status` prints (asked of the daemon now).
    const login = await statusPageLink(join(doc.tempDir, 'pi-node'))
    expect(login.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/status\?code=[A-Za-z0-9_-]{43}$/)
    const res = await page.goto(login.link as string)
    expect(res?.status()).toBe(200)
    expect(new URL(page.url()).search).toBe('') // the code left the address bar
    const token = readFileSync(join(doc.tempDir, 'pi-node', 'status-token'), 'utf8').trim()
    const [cookie] = await page.context().cookies()
    expect(cookie?.value).not.toBe(token) // a session id, never the token
    expect(cookie?.expires).toBeGreaterThan(0) // Max-Age: not a forever cookie
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
      .poll(() => page.locator('#history tr[data-outcome="refused"]').count(), {
        timeout: 20_000,
      })
      .toBe(2 + imageRuns())
    const hostile = page.locator('#capsules tr[data-cid="bafyhostile"] td').nth(1)
    // arrived with the live update, no reload
    await expect.poll(() => hostile.count(), { timeout: 15_000 }).toBe(1)
    expect(await hostile.textContent()).toBe(EVIL)
    expect(await page.evaluate(() => (globalThis as { pwned?: unknown }).pwned)).toBeUndefined()
    expect(await page.locator('#capsules img, #capsules script').count()).toBe(0)
    expect(dialogs).toEqual([])

    // Another browser without the cookie: the spent code, the token in a URL, a wrong code,
    // then nothing, then a forged cookie and one holding the token.
    const stranger = await browser.newContext()
    const other = await stranger.newPage()
    const origin = new URL(doc.ops.statusPage).origin
    expect((await other.goto(login.link as string))?.status()).toBe(401)
    expect((await other.goto(`${origin}/status?token=${token}`))?.status()).toBe(401)
    const wrong = await other.goto(`${origin}/status?code=${'A'.repeat(43)}`)
    expect(wrong?.status()).toBe(401)
    expect(await other.content()).not.toContain(doc.capsule.cid)
    expect((await other.goto(`${origin}/status`))?.status()).toBe(401)
    await stranger.addCookies([
      { name: 'digicap_status', value: 'f'.repeat(64), url: `${origin}/status` },
    ])
    expect((await other.goto(`${origin}/status`))?.status()).toBe(401)
    await stranger.addCookies([{ name: 'digicap_status', value: token, url: `${origin}/status` }])
    expect((await other.goto(`${origin}/status`))?.status()).toBe(401)
    await stranger.close()
  })

  it('after Ctrl-C: no log of any process holds a word, a private key or the data key', async () => {
    const dataDir = join(doc.tempDir, 'pi-node')
    const keys = await createKeyStore(join(dataDir, 'keys'))
    const record = await keys.get(doc.capsule.capsuleId)
    expect(await stopDemo()).toBe(130)
    const run = await demoRun()
    out = run.stdout()
    err = run.stderr()
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

describe('pnpm demo', () => {
  it('runs the capsule by the chain and fast paths, refuses a third run, leaves nothing behind', async () => {
    const run = await demoRun()
    // --keep: the nodes outlive the document until Ctrl-C, which stops them all (exit 130).
    expect(await stopDemo()).toBe(130)
    const r = { stdout: run.stdout(), stderr: run.stderr() }
    // The whole of stdout is the document: no banner, no header before it (the `pnpm demo`
    // wrapper adds nothing: the --help test below).
    const doc = JSON.parse(r.stdout)
    expect(doc.ok).toBe(true)

    const expected = expectedAggregate(readFileSync(CSV, 'utf8'))
    expect(expected.rows).toBe(12)
    expect(Object.keys(expected.stats)).toEqual(['age', 'salary_eur', 'bonus_eur', 'remote_days'])
    expect(doc.runs.chain.path).toBe('chain')
    expect(doc.runs.fast.path).toBe('fast')
    expect(doc.runs.chain.result).toEqual(expected)
    expect(doc.runs.fast.result).toEqual(expected)
    expect(doc.runs.chain.runId).not.toBe(doc.runs.fast.runId)
    for (const path of ['chain', 'fast']) {
      expect(Object.keys(doc.runs[path].steps).sort()).toEqual(
        [
          'start',
          'cleanup',
          'deliver',
          'fetch',
          'grant',
          'open',
          'release',
          'run',
          'verify',
        ].sort(),
      )
    }

    expect(doc.refusal).toEqual({
      code: 'ACCESS_DENIED',
      reason: 'MAX_RUNS_REACHED',
      path: 'fast',
      message: "Access denied by the capsule's policy: MAX_RUNS_REACHED",
    })
    expect(doc.executor.reputation).toBeGreaterThanOrEqual(1)

    // the image capsule (busybox + a script over the mounted CSV), run under runc: the receiver
    // got the aggregate computed here; the second run was refused before any key was released
    const runsImages = process.getuid?.() === 0 && onPath('runc') && onPath('umoci')
    if (runsImages) {
      const salaries = readFileSync(CSV, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((row) => Number(row.split(',')[2]))
      expect(doc.image.result).toEqual({
        rows: salaries.length,
        column: 'salary_eur',
        sum: salaries.reduce((a, b) => a + b, 0),
        min: Math.min(...salaries),
        max: Math.max(...salaries),
      })
      expect(doc.image.capsule.policy).toContain('maxRuns(1)')
      expect(doc.image.refusal).toEqual({
        code: 'ACCESS_DENIED',
        reason: 'MAX_RUNS_REACHED',
        keyReleased: false,
      })
    } else {
      expect(doc.image.skipped).toBeTypeOf('string')
    }

    const swtpm = onPath('swtpm') && onPath('tpm2_createprimary')
    expect(doc.sealer.swtpm).toBe(swtpm)
    expect(doc.sealer.kind).toBe(swtpm ? 'tpm2' : 'software')
    if (!swtpm) expect(r.stderr).toContain('INSECURE SEALER')
    // The warnings say what is true of the sealer that ran: a TPM is never called a software
    // key file; the swtpm emulator is named as such; the software sealer is INSECURE.
    const warnings = (doc.warnings as string[]).join('\n')
    if (doc.sealer.kind === 'tpm2') {
      expect(warnings).not.toMatch(/software key file|INSECURE SEALER/)
      if (doc.sealer.swtpm) expect(warnings).toMatch(/software emulator \(swtpm\)/)
    } else {
      expect(warnings).toMatch(/INSECURE SEALER/)
    }

    // the timeline covers every actor, in order
    const actors = new Set(doc.timeline.map((s: { actor: string }) => s.actor))
    expect([...actors].sort()).toEqual(
      ['chain', 'executor', 'pi-node', 'receiver', ...(swtpm ? ['committee'] : [])].sort(),
    )
    for (const s of doc.timeline) {
      expect(s.startMs).toBeGreaterThanOrEqual(0)
      expect(s.durationMs).toBeGreaterThanOrEqual(0)
    }
    // --keep: serve outlived the document (no exit code in it); Ctrl-C stopped it cleanly.
    expect(doc.exits.serve).toBe(null)
    expect(readFileSync(join(run.logsDir, 'pi-node-serve.err.log'), 'utf8')).toMatch(
      /"message":"stopping".*"signal":"SIGTERM"/,
    )

    // nothing left running, nothing left on disk
    const whats = doc.pids.map((p: { what: string }) => p.what)
    expect(whats).toContain('anvil')
    expect(whats).toContain('pi-node serve')
    if (swtpm) expect(whats).toContain('swtpm')
    if (swtpm) {
      // the executor attests: attested() in the policy, and both runs were released through
      // the keyguard's before-quote check; the demo's own verifier saw and verified every phase
      // of the watched run (the run holds each phase until it is quoted, however slow the box)
      expect(whats).toContain('swtpm (executor)')
      expect(doc.policy).toContain('attested()')
      expect(doc.attestation.releasedAfterBeforeQuote).toBe(true)
      const phases = doc.attestation.verifier.phases as { phase: string; verdict: string }[]
      expect(phases.map((p) => [p.phase, p.verdict])).toEqual([
        ['before', 'verified'],
        ['during', 'verified'],
        ['after', 'verified'],
      ])
    }
    for (const p of doc.pids as { pid: number; what: string }[]) {
      expect(alive(p.pid), `${p.what} (pid ${p.pid}) still running`).toBe(false)
    }
    // --keep keeps the temp folder (the test removes it at the end); without it the demo
    // removes it (see stopAll in src/demo.ts).
    expect(doc.kept).toBe(true)
    expect(existsSync(doc.tempDir)).toBe(true)
  }, 300_000)

  it('--help prints the usage; a bad flag is a usage error', async () => {
    // `pnpm demo` first, alone: its build step may rewrite the dist files the others import.
    const pnpmHelp = await runPnpmDemo(['--help'])
    const [help, bad] = await Promise.all([runDemo(['--help']), runDemo(['--sealer', 'quantum'])])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('usage: pnpm demo')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('error[USAGE]')
    // `pnpm demo` from the root (the version check, the cached build, then the demo): its
    // stdout is the demo's alone, byte for byte.
    expect(pnpmHelp.code, pnpmHelp.stderr.slice(-2000)).toBe(0)
    expect(pnpmHelp.stdout).toBe(help.stdout)
  })
})

describe('pnpm demo --keep: the data folder at rest', () => {
  it('every file in it is 0600 and every folder 0700: the nodes’ data folders, the receiver in the demo’s process, the TPMs’ state, the logs', async () => {
    const run = await demoRun()
    expect(await stopDemo()).toBe(130)
    // What is walked: the folders the READMEs document are all there, with what they hold.
    const swtpm = run.doc.sealer.swtpm === true
    // (The committee step adds its own nodes' and TPMs' folders: walked too.)
    expect(readdirSync(run.tempDir)).toEqual(
      expect.arrayContaining([
        ...['executor-node', 'logs', 'pi-node', 'receiver'],
        ...(swtpm ? ['swtpm', 'swtpm-executor'] : []),
      ]),
    )
    expect(readdirSync(run.dataDir('pi-node'))).toEqual(
      expect.arrayContaining(['config.json', 'owner.json', 'keys', 'capsules', 'ipfs', 'keyguard']),
    )
    expect(readdirSync(run.dataDir('executor-node'))).toEqual(
      expect.arrayContaining(['config.json', 'secrets.json', 'ipfs']),
    )
    expect(readdirSync(join(run.dataDir('receiver'), 'ipfs'))).toEqual(
      expect.arrayContaining(['blocks', 'datastore']),
    )
    // The test's umask is 022: whatever did not get the demo's umask 077 (src/demo.ts; the
    // CLIs set it again themselves) or an explicit mode comes out 0644 / 0755 and is listed.
    expect(await looseModes(run.tempDir)).toEqual([])
  }, 300_000) // run alone (-t), it pays for the demo run
})
