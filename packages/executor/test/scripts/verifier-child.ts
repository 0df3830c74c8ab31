/**
 * A stock verifier node in a process of its own, for the restart tests (ADR 0093): its libp2p
 * identity from a fixed seed (the peer id it registered), its signed-vote record at `record`
 * (none when null), watching from `fromBlock`. It prints a JSON line per vote its key signs
 * (`signed`: the typed data and the signature, before the vote can leave) and per verifier event,
 * so the test can SIGKILL it mid-round and compare what both lives signed.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import type { PbftSignedVotes } from '@digicap/committee'
import { createProvider } from '@digicap/contracts'
import { createDigicapNode, privateKeyFromSeed } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, Wallet } from 'ethers'
import { ethersVerifierChain, fileSignedVotes, verifierNode } from '../../src/node/index.ts'

interface ChildConfig {
  rpcUrl: string
  chainId: string
  addresses: Record<string, string>
  key: `0x${string}`
  seed: `0x${string}`
  peers: string[]
  /** null: none, as `serve` starts (from the head, or back `historyBlocks` with open slots). */
  fromBlock: number | null
  record: string | null
  create: boolean
  watchMs: number
}

const emit = (doc: unknown) =>
  process.stdout.write(
    `${JSON.stringify(doc, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  )
const c = JSON.parse(process.env.VERIFIER_CHILD ?? '{}') as ChildConfig

const node = await createDigicapNode({ privateKey: await privateKeyFromSeed(getBytes(c.seed)) })
for (const a of c.peers) await node.libp2p.dial(multiaddr(a)).catch(() => {})
const key = privateKeySigner(c.key)
const signer = {
  address: key.address,
  async signTypedData(typedData: Parameters<typeof key.signTypedData>[0]) {
    const signature = await key.signTypedData(typedData)
    emit({
      event: 'signed',
      primaryType: typedData.primaryType,
      message: typedData.message,
      signature,
    })
    return signature
  },
}
let signedVotes: PbftSignedVotes | undefined
if (c.record !== null) {
  signedVotes = await fileSignedVotes({ path: c.record, signer: key.address, create: c.create })({
    writeFileAtomic,
  })
}
const runner = new Wallet(c.key, createProvider(c.rpcUrl, BigInt(c.chainId)))
const verifier = verifierNode({
  pollMs: 200,
  openJobs: false,
  ticketWaves: false,
  settle: false,
  watchMs: c.watchMs,
  challengeEveryMs: 300,
  ...(c.fromBlock === null ? {} : { fromBlock: c.fromBlock }),
})({
  libp2p: node.libp2p,
  chain: ethersVerifierChain({
    addresses: c.addresses as never,
    settlement: c.addresses as never,
    runner,
  }),
  signer,
  vrfKey: getBytes(c.key),
  ...(signedVotes === undefined ? {} : { signedVotes }),
  onEvent: (e) => {
    const error = 'error' in e && e.error instanceof Error ? e.error : undefined
    emit({
      event: 'verifier',
      kind: e.event,
      ...('round' in e ? { round: e.round } : {}),
      ...('phase' in e && typeof e.phase === 'object' ? { phase: e.phase } : {}),
      ...(error === undefined
        ? {}
        : { error: error.message.split('\n')[0], reason: (error as { reason?: string }).reason }),
      ...('reason' in e ? { why: e.reason } : {}),
    })
  },
})
await verifier.start()
emit({ event: 'ready', peerId: node.libp2p.peerId.toString(), address: key.address })
