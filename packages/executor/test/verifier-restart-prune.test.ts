/**
 * A verifier restarted after its jobs ended while it was down prunes their slots from its
 * signed-vote record, however far back they are (ADR 0093 amendment, helper 136).
 *
 * Real anvil with the settlement deployed, real libp2p on loopback. Four seats: C is a stock
 * verifier node in a child process with its record in its folder; the other three are seated by
 * their tickets and never heard. The executor answers nobody: C judges the before phase missed,
 * signs its observation, and is killed with SIGKILL. The job times out on chain while C is down,
 * and more than `historyBlocks` (2000) blocks are mined after it. Before the fix, C restarted
 * without a `fromBlock` (as `serve` starts) looked 2000 blocks back, never saw the job again and
 * kept its slots for ever: a record filled so refuses every vote (`full`). Now it asks the hub
 * about the job of each open slot at start: timed out, its rounds are closed.
 *
 * Fail safe: a job the hub cannot be asked about (a lying RPC), or one it does not know, keeps
 * its slots; one still open keeps them and is rejoined.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toHex } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import { beforeRoundId, drawTicket, pbftDomain } from '@digicap/committee'
import { privateKeyFromSeed } from '@digicap/p2p'
import { onchainProof } from '@digicap/vrf'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { getBytes, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeEndedJobs, ethersVerifierChain, fileSignedVotes } from '../src/node/index.ts'
import { type VerifierLife as Life, startVerifierLife } from './helpers/verifier-life.ts'
import {
  anvilWallets,
  mineEvery,
  openAttestedJob,
  setupWorld,
  type World,
} from './helpers/world.ts'

const STAKE = parseEther('0.01')

let w: World
let dir: string
let wallets: Wallet[] = []
let miner: ReturnType<typeof setInterval> | undefined
const lives: Life[] = []
const seedC = hexlify(randomBytes(32)) as `0x${string}`

function startLife(config: Record<string, unknown>): Life {
  const life = startVerifierLife(config)
  lives.push(life)
  return life
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'verifier-prune-'))
  w = await setupWorld({
    fastPath: false,
    settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 400 },
  })
  wallets = anvilWallets(w, [4, 6, 7, 8])
  const peerC = peerIdFromPrivateKey(await privateKeyFromSeed(getBytes(seedC)))
  for (const [i, wallet] of wallets.entries()) {
    const peer = i === 0 ? peerC : peerIdFromPrivateKey(await privateKeyFromSeed(randomBytes(32)))
    await (
      await w.c.nodeRegistry
        .connect(wallet)
        .register(peer.toMultihash().bytes, `0x${'00'.repeat(32)}`, 2, { value: STAKE })
    ).wait()
  }
  miner = mineEvery(w)
}, 120_000)

afterAll(async () => {
  if (miner !== undefined) clearInterval(miner)
  for (const life of lives) life.proc.kill('SIGKILL')
  await Promise.all(lives.map((l) => l.exited))
  await w?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('a verifier restarted after its job ended further back than its look-back (ADR 0093)', () => {
  it('prunes the ended job’s slots at start (the record is not left full); an unreadable or unknown job keeps them', async () => {
    const record = join(dir, 'signed-votes.json')
    const child = {
      rpcUrl: w.anvil.rpcUrl,
      chainId: w.addresses.chainId,
      addresses: w.addresses,
      key: wallets[0]!.privateKey,
      seed: seedC,
      peers: [w.exec.libp2p.getMultiaddrs()[0]!.toString()],
      record,
      watchMs: 2000,
    }
    const fromBlock = await w.anvil.provider.getBlockNumber()
    const first = startLife({ ...child, fromBlock, create: true })
    await expect
      .poll(() => first.docs.some((d) => d.event === 'ready'), { timeout: 30_000 })
      .toBe(true)

    const { grantId, hub } = await openAttestedJob(w)
    const jobId = getBytes(grantId)
    // The three others are seated by their tickets and never heard.
    for (const wallet of wallets.slice(1)) {
      const chain = ethersVerifierChain({
        addresses: w.addresses,
        settlement: w.addresses as never,
        runner: wallet,
      })
      let sortition: Awaited<ReturnType<typeof chain.sortition>> | undefined
      while (sortition === undefined) {
        // The seed needs the grant block's hash: readable from the next block on.
        sortition = await chain.sortition(jobId).catch(() => undefined)
        if (sortition === undefined) await new Promise((r) => setTimeout(r, 200))
      }
      const ticket = drawTicket(getBytes(wallet.privateKey), sortition.seed)
      await chain.submitTicket(jobId, onchainProof(ticket.publicKey, sortition.seed, ticket.proof))
    }

    // C signs its observation (the before phase missed: the executor answers nobody), and dies.
    await expect
      .poll(() => first.docs.some((d) => d.event === 'signed' && d.primaryType === 'Observation'), {
        timeout: 60_000,
        interval: 10,
      })
      .toBe(true)
    first.proc.kill('SIGKILL')
    await first.exited
    clearInterval(miner)
    miner = undefined

    const open = (o: { maxEntries?: number } = {}) =>
      fileSignedVotes({ path: record, signer: wallets[0]!.address as `0x${string}`, ...o })({
        writeFileAtomic,
      })
    const left = (await open()).openSlots()
    expect(left).toBeGreaterThan(0)

    // Fail safe: a lying RPC (the status unreadable) and an unknown job keep the slots; the job
    // still seated keeps them and is named to be rejoined.
    const real = ethersVerifierChain({
      addresses: w.addresses,
      settlement: w.addresses as never,
      runner: wallets[0] as Wallet,
    })
    const unreadable = {
      status: async () => {
        throw new Error('ECONNRESET')
      },
    }
    let book = await open()
    expect(await closeEndedJobs(book, unreadable)).toEqual({
      closed: [],
      open: [],
      kept: [grantId],
    })
    expect(await closeEndedJobs(book, { status: async () => 'none' })).toMatchObject({
      kept: [grantId],
    })
    expect(await closeEndedJobs(book, real)).toEqual({ closed: [], open: [grantId], kept: [] })
    book = await open()
    expect(book.openSlots()).toBe(left)

    // The job times out while C is down, and the chain moves past C's look-back (2000 blocks).
    const { deadline } = await hub.jobs(grantId)
    const head = await w.anvil.provider.getBlockNumber()
    await w.anvil.provider.send('anvil_mine', [`0x${(Number(deadline) - head + 1).toString(16)}`])
    await (await hub.connect(w.other).closeTimedOut(grantId)).wait()
    await w.anvil.provider.send('anvil_mine', [`0x${(2100).toString(16)}`])
    // A lying RPC still keeps them.
    expect((await closeEndedJobs(await open(), unreadable)).kept).toEqual([grantId])
    expect((await open()).openSlots()).toBe(left)

    // Restarted as `serve` starts it (no fromBlock): the slots are gone once it is ready.
    const second = startLife({ ...child, fromBlock: null, create: false })
    await expect
      .poll(() => second.docs.some((d) => d.event === 'ready'), { timeout: 30_000 })
      .toBe(true)
    second.proc.kill('SIGKILL')
    await second.exited
    // Not full: a record bounded at what the first life left takes a new vote.
    const after = await open({ maxEntries: left })
    expect({
      open: after.openSlots(),
      closed: after.snapshot().closed,
      signed: signedBy(second),
    }).toEqual({ open: 0, closed: [toHex(beforeRoundId(jobId)), grantId], signed: 0 })
    const next = {
      domain: pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3'),
      jobId: randomBytes(32),
      phase: 'observation' as const,
      view: 0n,
    }
    await expect(
      after.sign(wallets[0]!.address as `0x${string}`, next, randomBytes(32), async () =>
        new Uint8Array(65).fill(1),
      ),
    ).resolves.toMatchObject({ stored: false })
  }, 180_000)
})

/** Votes a life's key signed (none is wanted for an ended job). */
function signedBy(life: Life): number {
  return life.docs.filter((d) => d.event === 'signed').length
}
