/**
 * The sortition's step in the random runner: verifiers prove their tickets for a job with
 * `@digicap/vrf` (real ECVRF proofs on secp256k1 over seed = keccak256(job id ‖ blockhash at
 * grant)) and send them to CommitteeSortition, so that the hub's funds move only through
 * committees real VRF outputs drew. The model predicts each ticket's fate (window, key owner,
 * active verifier, stake × reputation, not already seated, proof intact), checks that the chain
 * took the output the proof implies, and keeps the seats from the scores the chain reports.
 */
import {
  type OnchainVrfProof,
  onchainProof,
  prove,
  publicKeyOf,
  SECP256K1_SHA256_TAI as suite,
} from '@digicap/vrf'
import { concat, getBytes, hexlify, Interface, keccak256, toQuantity, type Wallet } from 'ethers'
import { committeeSortitionAbi } from '../../src/generated/artifacts.ts'
import {
  expect,
  HUB_SEATS,
  HUB_SORTITION_WINDOW,
  type HubStepContext,
  type JobModel,
  nextBlock,
  pickJob,
} from './hub.ts'

const sortition = new Interface(committeeSortitionAbi as never)
const ROLE_VERIFIER = 2
/** CommitteeSortition's floor on stake × reputation (`MIN_WEIGHT`, ADR 0024 as amended). */
const MIN_WEIGHT = 1n << 41n

/**
 * Tickets for one job in its window: mostly every verifier's, in a random order, sometimes a
 * few (the committee may then stay incomplete). For a job past its window, one late ticket.
 */
export async function tickets(s: HubStepContext, stranger: string): Promise<void> {
  const inWindow = (j: JobModel) =>
    j.status === 'open' && nextBlock(s) <= j.openedBlock + HUB_SORTITION_WINDOW
  const picked = pickJob(s, inWindow)
  if (!picked) return
  const [id, job] = picked
  job.seed ??= await seedOf(s, id, job.openedBlock)
  const order = [...s.hub.verifiers].sort(() => s.rnd.int(3) - 1)
  const count = !inWindow(job) ? 1 : s.rnd.chance(0.9) ? order.length : 1 + s.rnd.int(order.length)
  for (const node of order.slice(0, count)) await ticket(s, id, job, node, stranger)
}

/** Proofs made, and the milliseconds they took, for the run's report. */
export const proofCost = { count: 0, ms: 0 }

/** `node`'s ticket for `seed`, in the contract's form (one per node and job: proofs are ~40 ms). */
function proofOf(node: Wallet, seed: Uint8Array): OnchainVrfProof {
  const started = performance.now()
  const sk = getBytes(node.privateKey)
  const pk = publicKeyOf(suite, sk)
  const proof = onchainProof(pk, seed, prove(suite, sk, seed))
  proofCost.count++
  proofCost.ms += performance.now() - started
  return proof
}

/** keccak256(job id ‖ blockhash(grant block)), as CommitteeSortition derives it. */
async function seedOf(s: HubStepContext, id: string, block: number): Promise<Uint8Array> {
  const b = await s.rpc.call<{ hash: string }>('eth_getBlockByNumber', [toQuantity(block), false])
  return getBytes(keccak256(concat([id, b.hash])))
}

async function ticket(
  s: HubStepContext,
  id: string,
  job: JobModel,
  node: Wallet,
  stranger: string,
): Promise<void> {
  const vrf = job.proofs.get(node.address) ?? proofOf(node, job.seed as Uint8Array)
  job.proofs.set(node.address, vrf)
  // Now and then another sender with this key's proof, or a proof with one bit of c flipped.
  const roll = s.rnd.int(20)
  const caller = roll === 0 ? stranger : node.address
  const proof = roll === 1 ? { ...vrf.proof, c: vrf.proof.c ^ 1n } : vrf.proof
  const n = s.model.executor(node.address).node
  const weight = n.stake * (s.hub.reputation.get(node.address) as bigint)
  const b = nextBlock(s)
  const ok =
    b > job.openedBlock &&
    b <= job.openedBlock + HUB_SORTITION_WINDOW &&
    caller === node.address &&
    roll !== 1 &&
    n.registered &&
    (n.roles & ROLE_VERIFIER) !== 0 &&
    n.stake >= s.model.p.minStake &&
    weight >= MIN_WEIGHT &&
    !job.seats.some((x) => x.node === node)
  const r = await s.send(
    caller,
    sortition.encodeFunctionData('submitTicket', [id, vrf.publicKey, proof]),
    s.hub.sortition,
  )
  expect(s, `submitTicket (block ${b}, opened ${job.openedBlock}, weight ${weight})`, ok, r)
  if (!ok) return
  const accepted = r.logs
    .map((l) => sortition.parseLog(l))
    .find((l) => l?.name === 'TicketAccepted')
  if (!accepted) return s.fail('submitTicket: no TicketAccepted')
  if (accepted.args.beta !== hexlify(vrf.beta))
    s.fail(
      `submitTicket: the chain's output ${accepted.args.beta}, the proof's ${hexlify(vrf.beta)}`,
    )
  seatInModel(s, job, node, accepted.args.score as bigint, accepted.args.seated as boolean)
}

/** CommitteeSortition's top-k: lowest score first, a newcomer after equal scores. */
function seatInModel(
  s: HubStepContext,
  job: JobModel,
  node: Wallet,
  score: bigint,
  seatedOnChain: boolean,
): void {
  const full = job.seats.length === HUB_SEATS
  const seated = !full || score < (job.seats.at(-1)?.score as bigint)
  if (seated !== seatedOnChain)
    s.fail(`submitTicket: chain says seated ${seatedOnChain}, the scores say ${seated}`)
  s.hub.done.ticket = (s.hub.done.ticket ?? 0) + 1
  if (!seated) return
  if (full) job.seats.pop()
  const at = job.seats.findIndex((x) => x.score > score)
  job.seats.splice(at === -1 ? job.seats.length : at, 0, { node, score })
}
