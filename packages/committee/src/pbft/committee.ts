/**
 * The committee of one job as PBFT sees it: n = 3f+1 members in leader order (ascending VRF
 * output, from sortition), each an Ethereum address and a libp2p peer id.
 */
import { type Address, InvalidArgumentError, normalizeAddress } from '@digicap/capsule-core'
import { PBFT_MAX_MEMBERS } from '@digicap/protocol'

/** One member: the address that signs its votes and the peer it speaks from. */
export interface PbftMember {
  address: Address
  /** The libp2p peer id, as a string (`peerId.toString()`). */
  peerId: string
}

/** A checked committee. */
export interface PbftCommittee {
  /** Members in leader order: view v is led by `members[v mod n]`. */
  readonly members: readonly PbftMember[]
  /** Faults tolerated: floor((n - 1) / 3). */
  readonly f: number
  /** Signatures a decision needs: 2f + 1. */
  readonly quorum: number
}

/**
 * Checks a committee: n = 3f + 1 with 4 ≤ n ≤ 64, addresses and peer ids unique.
 *
 * @throws {InvalidArgumentError} naming the first bad member.
 */
export function pbftCommittee(members: readonly PbftMember[]): PbftCommittee {
  if (
    !Array.isArray(members) ||
    members.length < 4 ||
    members.length > PBFT_MAX_MEMBERS ||
    (members.length - 1) % 3 !== 0
  ) {
    // Any other n with a 2f + 1 quorum is unsafe: at n = 5 two quorums of 3 can share only the
    // faulty member. CommitteeSortition seats only 3f + 1 too.
    throw new InvalidArgumentError('A PBFT committee has n = 3f + 1 members, 4 to 64', {
      details: { size: Array.isArray(members) ? members.length : typeof members },
      hint: 'Draw 3f + 1 members (4, 7, 10, …): fewer cannot tolerate one fault, and other sizes break quorum intersection.',
    })
  }
  const addresses = new Set<string>()
  const peers = new Set<string>()
  const out = members.map((m, index) => {
    const address = normalizeAddress(m.address, `members[${index}].address`)
    if (typeof m.peerId !== 'string' || m.peerId.length === 0) {
      throw new InvalidArgumentError('member peerId must be a string', { details: { index } })
    }
    if (addresses.has(address) || peers.has(m.peerId)) {
      throw new InvalidArgumentError('A member appears twice', { details: { index } })
    }
    addresses.add(address)
    peers.add(m.peerId)
    return Object.freeze({ address, peerId: m.peerId })
  })
  const f = Math.floor((out.length - 1) / 3)
  return Object.freeze({ members: Object.freeze(out), f, quorum: 2 * f + 1 })
}

/** The leader of `view`. */
export function leaderOf(committee: PbftCommittee, view: bigint): PbftMember {
  return committee.members[Number(view % BigInt(committee.members.length))] as PbftMember
}

/** The member with `address`, or undefined. */
export function memberByAddress(committee: PbftCommittee, address: string): PbftMember | undefined {
  return committee.members.find((m) => m.address.toLowerCase() === address.toLowerCase())
}
