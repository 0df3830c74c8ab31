/**
 * The demo's committee step (issue #16, ADR 0039): four verifiers — each an executor node's
 * libp2p node with its own account, registered with the verifier role — attest chain-path runs
 * of a capsule whose policy asks `attested()` and a fee, sealed by a second owner whose
 * `pi-node serve` has its committee gate on (`DIGICAP_ATTESTATION_HUB`: the keyguard releases a
 * key only once the committee's "before" verdict is a pass on chain):
 *
 * 1. an honest run by the demo's executor (its data folder opened in process with
 *    `DIGICAP_ATTEST_CHALLENGERS=4`: its phases held for the four members): ticket → seated → before pass (PBFT, on
 *    chain) → key released → run → during / after → final certificate → settled: the escrow
 *    pays the signers and the executor, reputations rise;
 * 2. at the same time (each member sends through `serialSigner`: one nonce sequence per account),
 *    a tampered executor (in process, its own swtpm, `skipRunPcrReset`: its last clean-up left
 *    PCR 23 measured and claimed the reset): the before-quote fails → a fail certificate → the
 *    keyguard refuses the grant (no key) → settled: the executor's stake slashed, its reputation
 *    halved.
 *
 * The timeline is the verifiers' own event lines (`verifierLine`) and the hub's and registry's
 * events read back from the chain; the outcome is read from chain state and the keyguard's
 * release journal, never assumed.
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createAttestationAgent } from '@digicap/attestation/agent'
import { libsecp256k1Signer } from '@digicap/committee'
import {
  connectDigicap,
  connectSettlement,
  type DigicapAddresses,
  serialSigner,
} from '@digicap/contracts'
import {
  createExecutorNode,
  type ExecutorNode,
  ethersVerifierChain,
  loadNodeAttestation,
  NODE_ROLES,
  openExecutorNode,
  skipRunPcrReset,
  type VerifierEvent,
  type VerifierNode,
  verifierLine,
  verifierNode,
} from '@digicap/executor/node'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { type EventLog, getBytes, type JsonRpcProvider, parseEther, Wallet } from 'ethers'
import type { StepContext } from './step-context.ts'

export const COMMITTEE_FEE = parseEther('0.01')
export const COMMITTEE_POLICY = 'all(attested(), fee(0.01))'
const STAKE = parseEther('0.01')
const MEMBERS = 4
/** anvil mines a block this often during the step (sortition windows are counted in blocks). */
const BLOCK_MS = 250

/** The committee step's own inputs, beside the demo's {@link StepContext}. */
export interface CommitteeStepInputs {
  executorDataDir: string
  /** Where the tampered executor's swtpm state and attestation record go. */
  dir: string
  program: string
  rpcUrl: string
  contracts: DigicapAddresses
  /** Funded accounts: four verifiers and the tampered executor. */
  accounts: Wallet[]
  provider: JsonRpcProvider
  /** The demo's executor (the honest one). */
  executor: string
}

type Ctx = StepContext & CommitteeStepInputs

export interface CommitteeJob {
  grantId: string
  executor: string
  /** AttestationHub.jobs(grantId): Settled = 4; verdict bits (7 pass); before 1 pass, 2 fail. */
  job: { status: number; verdict: number; before: number; signers: number }
  /** The keyguard's release journal for the grant: `completed` (key sent) or `refused`. */
  release: { state: string; reason?: string }
  /** Per member: phase verdicts as it saw them. */
  phases: { phase: string; verdict: string }[][]
  /** The deciding rounds as each member reported them. */
  decided: { round: string; verdict: number; view: number }[]
  reputation: { before: number; after: number }
  stake: { before: string; after: string }
  credits: { before: string; after: string }
  /** Hub and registry events of this job, in block order. */
  chain: { block: number; event: string; args: Record<string, string> }[]
}

export interface CommitteeOutcome {
  skipped?: string
  /** Where to check it all (anvil outlives the document under --keep). */
  chain?: { rpcUrl: string; addresses: DigicapAddresses }
  /** The committee pi-node's data folder (its release journal). */
  piDataDir?: string
  ms?: number
  sortitionWindow?: number
  members?: { address: string; reputation: { before: number; after: number }; credits: string }[]
  honest?: CommitteeJob
  tampered?: CommitteeJob
}

/** Settlement parameters the demo deploys (a short sortition window: ADR 0039). */
export const DEMO_SETTLEMENT = {
  seats: MEMBERS,
  // 20 blocks (the default) of 250 ms: every member's ticket must land within the window of the
  // grant's block or the job is never seated (CommitteeIncomplete); 12 lost tickets on this box.
  sortitionWindow: 20,
  certificateBlocks: 4000,
  verifierBps: 2000,
  executorBps: 1000,
  failSlash: parseEther('0.004'),
}

const lower = (s: string) => s.toLowerCase()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Prepared {
  tpms: Swtpm[]
  /** The committee pi-node's data folder and its keyguard's multiaddr. */
  pi: { dir: string; keyguard: string; child: ChildProcess }
  verifierNodes: ExecutorNode[]
  tampered: ExecutorNode
  capsule: { cid: string; capsuleId: string }
}

/**
 * Starts preparing at once (swtpm, nodes, registrations, the capsule: they overlap the demo's
 * earlier steps; no verifier watches the chain yet); `run()` runs the two jobs.
 */
export function committeeStep(ctx: Ctx): {
  run(): Promise<CommitteeOutcome>
  stop(): Promise<void>
} {
  let prepared: Prepared | undefined
  let verifiers: VerifierNode[] = []
  let miner: ReturnType<typeof setInterval> | undefined
  /** Nodes opened by run() (the honest executor's). */
  const openedNodes: ExecutorNode[] = []
  const preparing = prepare(ctx).then((p) => {
    prepared = p
    return p
  })
  preparing.catch(() => {}) // awaited by run()
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= stopAll()
    return stopping
  }
  async function stopAll() {
    clearInterval(miner)
    await Promise.allSettled(verifiers.map((v) => v.stop()))
    await Promise.allSettled(openedNodes.map((n) => n.stop()))
    const p = prepared ?? (await preparing.catch(() => undefined))
    if (!p) return
    await Promise.allSettled([p.tampered.stop(), ...p.verifierNodes.map((n) => n.stop())])
    await ctx.stopChild(p.pi.child)
    await Promise.allSettled(p.tpms.map((t) => t.stop()))
  }
  return {
    stop,
    async run() {
      const p = await preparing
      const t0 = ctx.now()
      const events: { at: number; member: number; e: VerifierEvent }[] = []
      const jobOpened = new Map<string, (jobId: string) => void>()
      const fromBlock = (await ctx.provider.getBlockNumber()) + 1
      const kgAddr = p.pi.keyguard
      // Blocks keep coming (the sortition window and deadlines are counted in blocks).
      miner = setInterval(() => {
        void ctx.provider.send('anvil_mine', ['0x1']).catch(() => {})
      }, BLOCK_MS)
      const settlement = {
        attestationHub: ctx.contracts.attestationHub,
        committeeSortition: ctx.contracts.committeeSortition,
      }
      // From the next block on: a grant in the head block (the image run's fast-path audit) is
      // not this step's; a member would watch it to the end of watchMs and block its next job.
      const first = (await ctx.provider.getBlockNumber()) + 1
      verifiers = p.verifierNodes.map((en, member) => {
        const account = ctx.accounts[member] as Wallet
        const key = getBytes(account.privateKey)
        return verifierNode({
          pollMs: 200,
          challengeEveryMs: 250,
          viewTimeoutMs: 2000,
          backupMs: 800,
          watchMs: 60_000,
          fromBlock: first,
        })({
          libp2p: en.node.libp2p,
          chain: ethersVerifierChain({
            addresses: ctx.contracts,
            settlement,
            // One send at a time per member: its two jobs' transactions overlap.
            runner: serialSigner(new Wallet(account.privateKey, ctx.provider)),
          }),
          signer: libsecp256k1Signer(key), // as `executor-node serve --role verifier` signs
          vrfKey: key,
          onEvent: (e) => {
            events.push({ at: ctx.now(), member, e })
            const why = e.event === 'not-selected' ? ` (${e.reason.slice(0, 120)})` : ''
            ctx.progress(`  verifier ${member + 1} ${verifierLine(e).text.trim()}${why}`)
            if (e.event === 'job-opened') jobOpened.get(lower(e.executor))?.(e.jobId)
          },
        })
      })
      await Promise.all(verifiers.map((v) => v.start()))
      const c = connectDigicap(ctx.contracts, ctx.provider)
      const hub = connectSettlement(settlement, ctx.provider).attestationHub
      const members = ctx.accounts.slice(0, MEMBERS).map((a) => a.address)
      const reputation = async (a: string) => Number(await c.nodeRegistry.reputationOf(a))
      const snapshot = async (executor: string) => ({
        reputation: await reputation(executor),
        stake: (await c.nodeRegistry.getNode(executor)).stake as bigint,
        credits: (await c.accessController.credits(executor)) as bigint,
      })
      const membersBefore = await Promise.all(members.map(reputation))

      /** Waits for every member to finish the job, then reads what the chain and keyguard say. */
      async function outcome(
        grantId: string,
        executor: string,
        before: Awaited<ReturnType<typeof snapshot>>,
        label: string,
      ): Promise<CommitteeJob> {
        const done = await ctx.stage(
          'committee',
          `${label}: every member done`,
          () => Promise.all(verifiers.map((v) => v.finished(grantId))),
          (d) => d.map((e) => e.event).join(', '),
        )
        const failed = done.find((e) => e.event === 'job-failed')
        if (failed?.event === 'job-failed') throw failed.error
        const release = await journalEntry(p.pi.dir, grantId)
        const after = await snapshot(executor)
        const j = await hub.jobs(grantId)
        const mine = events.filter((x) => x.e.jobId === lower(grantId))
        for (const line of timelineOf(mine, t0)) ctx.record({ actor: 'committee', ...line })
        const chain = await chainEvents(ctx, fromBlock, grantId)
        ctx.record({
          actor: 'chain',
          name: `${label}: AttestationHub and NodeRegistry events`,
          startMs: (mine[0]?.at ?? ctx.now()) as number,
          durationMs: Math.max(0, ctx.now() - (mine[0]?.at ?? ctx.now())),
          detail: chain.map((e) => `#${e.block} ${e.event}${brief(e)}`).join(' → '),
        })
        return {
          grantId,
          executor,
          job: {
            status: Number(j.status),
            verdict: Number(j.verdict),
            before: Number(j.before),
            signers: Number(j.signers),
          },
          release,
          phases: verifiers.map((_, m) =>
            mine
              .filter((x) => x.member === m && x.e.event === 'phase')
              .map((x) => {
                const ph = (x.e as Extract<VerifierEvent, { event: 'phase' }>).phase
                return { phase: ph.phase, verdict: ph.verdict }
              }),
          ),
          decided: mine
            .filter((x) => x.e.event === 'decided')
            .map((x) => {
              const d = x.e as Extract<VerifierEvent, { event: 'decided' }>
              return { round: d.round, verdict: d.verdict, view: Number(d.view) }
            }),
          reputation: { before: before.reputation, after: after.reputation },
          stake: { before: String(before.stake), after: String(after.stake) },
          credits: { before: String(before.credits), after: String(after.credits) },
          chain,
        }
      }

      // The two jobs overlap (each member's sends are serialised: one nonce sequence per
      // account); their outcomes are read back once both are done.
      const honestBefore = await snapshot(ctx.executor)
      const tamperedAddress = p.tampered.address
      const tamperedBefore = await snapshot(tamperedAddress)

      // 1. The honest run: the demo's executor (its data folder, its TPM), opened in process with
      // its config's environment: each phase held for the four members (attestHold, ADR 0039),
      // counting only the members the hub seated (settlement, ADR 0070).
      const holding = {
        DIGICAP_ATTEST_HOLD_MS: '30000',
        DIGICAP_ATTEST_CHALLENGERS: String(MEMBERS),
        DIGICAP_ATTEST_GRACE_MS: '3000',
        DIGICAP_ATTESTATION_HUB: ctx.contracts.attestationHub,
        DIGICAP_COMMITTEE_SORTITION: ctx.contracts.committeeSortition,
      }
      const honestJob = (async () => {
        const honestNode = await ctx.stage(
          'executor',
          'open the executor node (its data folder) with DIGICAP_ATTEST_CHALLENGERS=4',
          async () => {
            const en = await createExecutorNode(ctx.executorDataDir, holding, {
              listen: ['/ip4/127.0.0.1/tcp/0'],
            })
            openedNodes.push(en)
            for (const v of p.verifierNodes)
              await en.node.libp2p.dial(v.node.libp2p.getMultiaddrs()[0]!)
            return en
          },
          (en) =>
            `${en.address.slice(0, 10)}…, attestHold ${JSON.stringify(en.config.attestHold)}${en.committees === undefined ? '' : ', counting only the hub’s seats'}`,
        )
        const ran = await ctx.stage(
          'executor',
          'run (chain path, fee 0.01 ETH) watched by the committee: grant → before verdict → release → run',
          () =>
            honestNode.executor.runCapsule(p.capsule.cid, {
              fast: false,
              fee: COMMITTEE_FEE,
              keyguardAddrs: [kgAddr],
            }),
          (r) => `grant ${r.grantId.slice(0, 10)}…, ${r.result.byteLength} bytes out`,
        )
        // What the node read of the hub: the seats whose quotes ended its holds (ADR 0070).
        const seats = await honestNode.committees?.seatedPeers(getBytes(ran.grantId))
        return {
          ...(await outcome(ran.grantId, ctx.executor, honestBefore, 'honest run')),
          seatsCounted: [...(seats ?? [])].sort(),
          verifierPeers: p.verifierNodes.map((v) => v.node.libp2p.peerId.toString()).sort(),
        }
      })()

      // 2. The tampered executor, at the same time: PCR 23 left measured by its last run, the
      // reset claimed.
      let runError: string | undefined
      const tamperedJob = (async () => {
        const opened = new Promise<string>((resolve) =>
          jobOpened.set(lower(tamperedAddress), resolve),
        )
        const tamperedRun = p.tampered.executor.runCapsule(p.capsule.cid, {
          fast: false,
          fee: COMMITTEE_FEE,
          keyguardAddrs: [kgAddr],
        })
        tamperedRun.then(
          () => {
            runError = 'ran'
          },
          (err: { code?: string }) => {
            runError = err.code ?? 'error'
          },
        )
        const grantId = await ctx.stage(
          'executor',
          'tampered executor requests access (chain path, fee 0.01 ETH)',
          () => opened,
          (id) => `grant ${id.slice(0, 10)}…, job opened by the verifiers`,
        )
        return outcome(grantId, tamperedAddress, tamperedBefore, 'tampered executor')
      })()
      const [honest, tampered] = await Promise.all([honestJob, tamperedJob])
      if (runError === 'ran') throw new Error('the tampered executor ran: its key was released')
      clearInterval(miner)
      const membersAfter = await Promise.all(members.map(reputation))
      const credits = await Promise.all(members.map((a) => c.accessController.credits(a)))
      return {
        chain: { rpcUrl: ctx.rpcUrl, addresses: ctx.contracts },
        piDataDir: p.pi.dir,
        ms: Math.round(ctx.now() - t0),
        sortitionWindow: DEMO_SETTLEMENT.sortitionWindow,
        members: members.map((address, i) => ({
          address,
          reputation: { before: membersBefore[i] as number, after: membersAfter[i] as number },
          credits: String(credits[i]),
        })),
        honest,
        tampered,
      }
    },
  }
}

async function prepare(ctx: Ctx): Promise<Prepared> {
  const contracts = {
    capsuleRegistry: ctx.contracts.capsuleRegistry,
    nodeRegistry: ctx.contracts.nodeRegistry,
    accessController: ctx.contracts.accessController,
  }
  const open = (account: Wallet, extra: Partial<Parameters<typeof openExecutorNode>[0]> = {}) =>
    openExecutorNode({
      rpcUrl: ctx.rpcUrl,
      chainId: Number(ctx.contracts.chainId),
      contracts,
      accountKey: getBytes(account.privateKey),
      libp2pSeed: new Uint8Array(randomBytes(32)),
      start: false,
      ...extra,
    })
  const [verifierNodes, tampered, pi] = await Promise.all([
    ctx.stage(
      'committee',
      `${MEMBERS} verifiers: libp2p nodes, registered (role verifier, stake 0.01 ETH)`,
      async () => {
        const nodes = await Promise.all(ctx.accounts.slice(0, MEMBERS).map((a) => open(a)))
        for (const n of nodes) await n.register({ stake: STAKE, roles: NODE_ROLES.verifier })
        // Loopback "bootstrap": the members know each other (PBFT).
        for (const [i, n] of nodes.entries())
          for (const other of nodes.slice(0, i))
            await n.node.libp2p.dial(other.node.libp2p.getMultiaddrs()[0]!)
        return nodes
      },
      (nodes) => nodes.map((n) => `${n.address.slice(0, 8)}…`).join(' '),
    ),
    ctx.stage(
      'executor',
      'tampered executor: its own swtpm, registered; its last clean-up skipped the PCR 23 reset',
      async () => {
        const stateDir = join(ctx.dir, 'swtpm-tampered')
        await mkdir(stateDir, { recursive: true })
        const tpm = await startSwtpm({ stateDir })
        ctx.started(tpm.pid, 'swtpm (tampered executor)')
        const agent = skipRunPcrReset(createAttestationAgent({ tcti: tpm.tcti }))
        const attestation = await loadNodeAttestation({
          agent,
          recordFile: join(ctx.dir, 'tampered-attestation-record.bin'),
        })
        const en = await open(ctx.accounts[MEMBERS] as Wallet, {
          attestation,
          maxReleaseWaitMs: 120_000,
          start: true,
        })
        await en.register({ stake: STAKE, roles: NODE_ROLES.executor })
        // Its previous run: measured, then a clean-up that claims the reset it skipped.
        const previous = new Uint8Array(randomBytes(32))
        await agent.measureRun({
          runtimeDigest: new Uint8Array(randomBytes(32)),
          capsuleHeaderHash: new Uint8Array(randomBytes(32)),
          grantId: previous,
          ephemeralPublicKey: new Uint8Array(randomBytes(32)),
        })
        await agent.endRun({ grantId: previous, workspaceRemoved: true, keyBuffersWiped: true })
        return { tpm, en }
      },
      (t) => `${t.en.address.slice(0, 10)}…, PCR 23 measured, reset claimed`,
    ),
    secondPi(ctx),
  ])
  for (const v of verifierNodes)
    await tampered.en.node.libp2p.dial(v.node.libp2p.getMultiaddrs()[0]!)
  const sealed = await ctx.stage(
    'pi-node',
    `seal: salaries.csv + QuickJS aggregate, policy ${COMMITTEE_POLICY}`,
    () =>
      ctx.cliOk(
        ctx.piNode,
        [
          'seal',
          ctx.csv,
          '--policy',
          COMMITTEE_POLICY,
          '--runtime',
          'quickjs',
          '--entry',
          'main.js',
          '--code',
          ctx.program,
        ],
        pi.env,
        'pi-node seal (committee)',
      ),
    (d) => String(d.cid),
  )
  return {
    tpms: [tampered.tpm, pi.tpm],
    pi: { dir: pi.dir, keyguard: pi.keyguard, child: pi.child },
    verifierNodes,
    tampered: tampered.en,
    capsule: { cid: String(sealed.cid), capsuleId: String(sealed.capsuleId) },
  }
}

/**
 * A second owner's pi-node (its own swtpm) whose `serve` runs with the committee gate on
 * (`DIGICAP_ATTESTATION_HUB`): the demo's first pi-node keeps the keyguard's own challenge, so
 * its runs, metrics and status page are the same with or without this step.
 */
async function secondPi(ctx: Ctx) {
  const dir = join(ctx.dir, 'pi-node-committee')
  const stateDir = join(ctx.dir, 'swtpm-committee-pi')
  await mkdir(stateDir, { recursive: true })
  const tpm = await ctx.stage(
    'pi-node',
    'start swtpm (the second Pi TPM)',
    () => startSwtpm({ stateDir }),
    (t) => t.tcti,
  )
  ctx.started(tpm.pid, 'swtpm (committee pi-node)')
  const env = {
    DIGICAP_DATA_DIR: dir,
    DIGICAP_RPC_URL: ctx.rpcUrl,
    DIGICAP_ATTESTATION_HUB: ctx.contracts.attestationHub,
    DIGICAP_COMMITTEE_POLL_MS: '250',
  }
  const init = await ctx.stage(
    'pi-node',
    'second owner: init (its own TPM)',
    () =>
      ctx.cliOk(
        ctx.piNode,
        [
          'init',
          '--capsule-registry',
          ctx.contracts.capsuleRegistry,
          '--node-registry',
          ctx.contracts.nodeRegistry,
          '--access-controller',
          ctx.contracts.accessController,
          '--show-mnemonic-in-json',
          '--listen',
          '/ip4/127.0.0.1/tcp/0',
          '--tcti',
          tpm.tcti,
        ],
        env,
        'pi-node init (committee)',
      ),
    (d) => `owner ${d.owner.address}`,
  )
  for (const a of [init.owner?.address, init.operator?.address])
    if (typeof a === 'string')
      await ctx.provider.send('anvil_setBalance', [a, '0x56bc75e2d63100000'])
  const serve = await ctx.stage(
    'pi-node',
    'second owner: serve with the committee gate (DIGICAP_ATTESTATION_HUB)',
    () =>
      ctx.daemon(
        ctx.piNode,
        ['serve', '--status-interval-ms', '500', '--ops-port', '0', '--allow-software-sealer'],
        env,
        'pi-node serve (committee)',
      ),
    () => "attested() keys wait for the committee's before verdict on chain",
  )
  const ready = serve.lines()[0] ?? {}
  if (ready.ok === false) throw new Error(`pi-node serve (committee) failed: ${serve.stderr()}`)
  return {
    tpm,
    dir,
    env,
    child: serve.child,
    keyguard: (ready.multiaddrs as string[])[0] as string,
  }
}

/** The keyguard's release journal entry of a grant, once it is closed (read-only). */
async function journalEntry(
  piDataDir: string,
  grantId: string,
): Promise<{ state: string; reason?: string }> {
  const file = join(piDataDir, 'keyguard', 'journal', `${lower(grantId)}.json`)
  for (let i = 0; ; i++) {
    try {
      const e = JSON.parse(await readFile(file, 'utf8')) as { state: string; reason?: string }
      if (e.state !== 'begun' || i > 100)
        return { state: e.state, ...(e.reason === undefined ? {} : { reason: e.reason }) }
    } catch {
      if (i > 100) return { state: 'none' }
    }
    await sleep(100)
  }
}

/** The members' events of one job as timeline lines: one per kind, first and last member. */
function timelineOf(
  mine: { at: number; member: number; e: VerifierEvent }[],
  t0: number,
): { name: string; startMs: number; durationMs: number; detail?: string }[] {
  const groups = new Map<string, { at: number; member: number; e: VerifierEvent }[]>()
  for (const x of mine) {
    const e = x.e
    const key =
      e.event === 'phase'
        ? `phase ${e.phase.phase} ${e.phase.verdict}`
        : e.event === 'decided' || e.event === 'certificate'
          ? `${e.event} ${e.round}`
          : e.event === 'ticket'
            ? `ticket ${e.seated}`
            : e.event
    groups.set(key, [...(groups.get(key) ?? []), x])
  }
  return [...groups.values()].map((xs) => {
    const first = xs[0] as { at: number; e: VerifierEvent }
    const last = xs.at(-1) as { at: number }
    const text = verifierLine(first.e)
      .text.trim()
      .replace(/^job 0x[0-9a-f]+… /, '')
    const submitted = xs.filter((x) => x.e.event === 'certificate' && x.e.submitted).length
    return {
      name: text,
      startMs: first.at,
      durationMs: last.at - first.at,
      detail:
        `${new Set(xs.map((x) => x.member)).size}/${MEMBERS} members, +${Math.round(first.at - t0)} ms into the step` +
        (first.e.event === 'certificate' ? `, ${submitted} sent it on chain` : ''),
    }
  })
}

const SHOWN: Record<string, readonly string[]> = {
  BeforeVerdict: ['passed'],
  CertificateAccepted: ['verdict'],
  JobSettled: ['passed', 'executorSlashed'],
  EscrowPaid: ['perSigner', 'toExecutor', 'toOwner'],
  ReputationChanged: ['node', 'previous', 'current'],
  Slashed: ['node', 'amount'],
}

function brief(e: { event: string; args: Record<string, string> }): string {
  const keys = SHOWN[e.event]
  if (!keys) return ''
  return `(${keys.map((k) => `${k} ${k === 'node' ? `${e.args[k]?.slice(0, 8)}…` : e.args[k]}`).join(', ')})`
}

/** The hub's events of `jobId` and the registry's of its executor and members since `from`. */
async function chainEvents(ctx: Ctx, from: number, jobId: string): Promise<CommitteeJob['chain']> {
  const settlement = {
    attestationHub: ctx.contracts.attestationHub,
    committeeSortition: ctx.contracts.committeeSortition,
  }
  const { attestationHub } = connectSettlement(settlement, ctx.provider)
  const { nodeRegistry } = connectDigicap(ctx.contracts, ctx.provider)
  const hubLogs = (await attestationHub.queryFilter('*', from)) as EventLog[]
  const mine = hubLogs.filter(
    (l) => l.args?.[0] === jobId || lower(String(l.args?.[0])) === lower(jobId),
  )
  const blocks = new Set(mine.map((l) => l.blockNumber))
  // The registry's changes in the blocks of this job's settlement (reputation, slash).
  const reg = ((await nodeRegistry.queryFilter('*', from)) as EventLog[]).filter(
    (l) =>
      blocks.has(l.blockNumber) &&
      (l.eventName === 'ReputationChanged' || l.eventName === 'Slashed'),
  )
  return [...mine, ...reg]
    .filter((l) => l.eventName !== undefined)
    .sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index)
    .map((l) => ({
      block: l.blockNumber,
      event: l.eventName,
      args: Object.fromEntries(
        l.fragment.inputs.map((input, i) => [input.name, String(l.args[i])]),
      ),
    }))
}
