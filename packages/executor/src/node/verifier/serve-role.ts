/**
 * `executor-node serve --role …`: the verifier role on the node of a data folder. `executor`
 * (the default) starts nothing; `verifier` and `executor+verifier` start a {@link verifierNode}
 * on the node's libp2p with the account of its words, the config's contracts and settlement
 * (`settlement.attestationHub`, `settlement.committeeSortition`; env DIGICAP_ATTESTATION_HUB,
 * DIGICAP_COMMITTEE_SORTITION), and print each job's progress as daemon lines.
 */
import { readEkRoots } from '@digicap/attestation'
import { toHex } from '@digicap/capsule-core'
import { ConfigError, UsageError, writeFileAtomic } from '@digicap/cli-kit'
import { libsecp256k1Signer } from '@digicap/committee'
import { createProvider, serialSigner } from '@digicap/contracts'
import { Wallet } from 'ethers'
import { executorNodePaths } from '../config.ts'
import type { DaemonLine } from '../daemon.ts'
import type { ConfiguredExecutorNode } from '../data-folder.ts'
import { readIdentity } from '../node-keys.ts'
import { ethersVerifierChain } from './ethers-chain.ts'
import { fileSignedVotes } from './signed-votes-file.ts'
import type { VerifierEvent, VerifierNodeInit } from './types.ts'
import { verifierNode } from './verifier-node.ts'

export const NODE_SERVE_ROLES = ['executor', 'verifier', 'executor+verifier'] as const

/** A verifier event as a daemon line (`--json`: the event with `jobId`; text: one line). */
export function verifierLine(e: VerifierEvent): DaemonLine {
  const { event, jobId } = e
  const doc: Record<string, unknown> = { event: `committee-${event}`, jobId }
  let what: string = event
  if (e.event === 'phase') {
    Object.assign(doc, { phase: e.phase.phase, verdict: e.phase.verdict })
    what = `${e.phase.phase} ${e.phase.verdict}`
    if (e.phase.forwardedBy !== undefined) {
      doc.forwardedBy = e.phase.forwardedBy
      what += ` (forwarded, challenged by ${e.phase.forwardedBy})`
    }
  } else if (e.event === 'committee') {
    Object.assign(doc, { members: e.members, leader: e.leader })
    what = `committee ${e.members.join(' ')}`
  } else if (e.event === 'decided') {
    Object.assign(doc, { verdict: e.verdict, view: String(e.view) })
    what = `decided verdict ${e.verdict} in view ${e.view}`
  } else if (e.event === 'certificate') {
    Object.assign(doc, { round: e.round, submitted: e.submitted })
    if (e.signers !== undefined) doc.signers = e.signers
    what =
      e.signers === undefined
        ? `certificate ${e.round}: another member's landed`
        : `certificate ${e.round}: built (${e.signers.length} signatures)${e.submitted ? ' and submitted' : ", another member's landed first"}`
  } else if (e.event === 'job-failed') {
    Object.assign(doc, { error: (e.error as { code?: string }).code ?? e.error.name })
    what = `failed: ${e.error.message.split('\n')[0]}`
  } else if (e.event === 'equivocation') {
    Object.assign(doc, { round: e.round, member: e.member, reported: e.reported })
    if (e.error !== undefined) doc.error = (e.error as { code?: string }).code ?? e.error.name
    // The error's hint too: for this member's own key it is what the operator must do.
    const hint = (e.error as { hint?: string } | undefined)?.hint
    what = `equivocation of ${e.member} in the ${e.round} round: ${
      e.reported ? 'reported, convicted' : 'not reported'
    }${e.error === undefined ? '' : ` (${e.error.message.split('\n')[0]})`}${hint === undefined ? '' : `. ${hint}`}`
  } else if (e.event === 'forward-refused') {
    doc.reason = e.reason
    what = `forwarded answer refused: ${e.reason}`
  } else if (e.event === 'not-selected') doc.reason = e.reason
  return { doc, text: `job ${jobId.slice(0, 10)}… ${what}\n` }
}

/** Options of {@link startServeRole}. */
export interface ServeRoleOptions {
  /**
   * Create the signed-vote record when the data folder has none (`serve --new-vote-record`): only
   * for a key that never signed votes elsewhere or whose jobs all closed (ADR 0093). Default false:
   * a missing record is refused.
   */
  readonly newVoteRecord?: boolean
}

/**
 * Starts the role's verifier (none for `executor`); returns what stops it. The verifier signs its
 * votes through `<dataDir>/signed-votes.json` (ADR 0093).
 * @throws {UsageError} an unknown role. {@link ConfigError} a verifier role without the settlement
 * addresses. `SignedVoteError` a signed-vote record missing, damaged or another key's.
 */
export async function startServeRole(
  en: ConfiguredExecutorNode,
  role: string,
  onLine: (line: DaemonLine) => void,
  init: VerifierNodeInit = {},
  options: ServeRoleOptions = {},
): Promise<() => Promise<void>> {
  if (!(NODE_SERVE_ROLES as readonly string[]).includes(role)) {
    throw new UsageError('Unknown --role', {
      details: { role },
      hint: `One of ${NODE_SERVE_ROLES.join(', ')}.`,
    })
  }
  if (role === 'executor') return async () => {}
  const { config } = en
  if (config.settlement === undefined) {
    throw new ConfigError('The verifier role needs the committee settlement contracts', {
      hint: 'Set settlement.attestationHub and settlement.committeeSortition in config.json (or DIGICAP_ATTESTATION_HUB, DIGICAP_COMMITTEE_SORTITION).',
    })
  }
  const id = await readIdentity(config)
  id.libp2pSeed.fill(0)
  const key = id.ethereumPrivateKey
  let signedVotes: Awaited<ReturnType<ReturnType<typeof fileSignedVotes>>>
  try {
    signedVotes = await fileSignedVotes({
      path: executorNodePaths(config.dataDir).signedVotes,
      signer: id.address,
      create: options.newVoteRecord === true,
    })({ writeFileAtomic })
  } catch (err) {
    key.fill(0)
    throw err
  }
  const provider = createProvider(config.rpcUrl, config.chainId)
  const ekRoots =
    config.verifier?.ekRoots === undefined ? undefined : await readEkRoots(config.verifier.ekRoots)
  const verifier = verifierNode({ ...init, ...(ekRoots === undefined ? {} : { ekRoots }) })({
    libp2p: en.node.libp2p,
    chain: ethersVerifierChain({
      addresses: { ...config.contracts, chainId: String(config.chainId) },
      settlement: config.settlement,
      // several jobs' rounds send from this one account at once: one nonce sequence
      runner: serialSigner(new Wallet(toHex(key), provider)),
    }),
    // votes and challenges: libsecp256k1, the same bytes as noble's, ~4× cheaper (ADR 0098)
    signer: libsecp256k1Signer(key),
    signedVotes,
    vrfKey: key,
    onEvent: (e) => onLine(verifierLine(e)),
  })
  await verifier.start()
  onLine({
    doc: { event: 'verifier', address: verifier.address, hub: config.settlement.attestationHub },
    text: `verifier role: ${verifier.address} watches AttestationHub ${config.settlement.attestationHub}\n`,
  })
  return async () => {
    await verifier.stop()
    provider.destroy()
    key.fill(0)
  }
}
