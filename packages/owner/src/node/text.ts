/**
 * The owner node's results as the lines a terminal shows (`pi-node` prints them; the JSON
 * output is the result itself). Kept beside the results so every front end says the same.
 */
import type { KeyguardStatus } from '@digicap/keyguard'
import type { SealerDescription } from '@digicap/keyguard/local'
import type { InitOwnerNodeResult } from './init.ts'
import type { MovePolicyResult } from './move-policy.ts'
import type { RecoverOwnerNodeResult } from './recover.ts'

/** A node initialised in `dataDir` (`initOwnerNode`); the mnemonic is not in it. */
export function initResultText(dataDir: string, r: InitOwnerNodeResult): string {
  const { owner, operator, sealer: s, config } = r
  return (
    `Initialised pi-node in ${dataDir}\n` +
    `  owner address    ${owner.address}\n` +
    `  libp2p peer id   ${owner.peerId}\n` +
    `  operator         ${operator.address ?? 'none'}${operator.approved ? ' (approved)' : ' (NOT approved)'}\n` +
    `  recovery key id  ${owner.recoveryKeyId}\n` +
    `  sealer           ${s.kind} (key ${s.keyId.slice(0, 16)}…)${s.warning ? '  (see the WARNING above)' : ''}\n` +
    (s.details.tpmIdentity ? `  TPM identity     ${s.details.tpmIdentity}\n` : '') +
    `  chain            ${config.chainId} capsuleRegistry ${config.contracts.capsuleRegistry}\n`
  )
}

/**
 * The sealer as `pi-node status` shows it: kind, hardware or not, key id, and how the key's TPM
 * was checked when it was pinned (ADR 0097: EK-activated, or UNVERIFIED TPM).
 */
export function sealerStatusText(
  sealer: SealerDescription | { error: { code: string; message: string } },
): string {
  if ('error' in sealer) return `unavailable: error[${sealer.error.code}] ${sealer.error.message}`
  const line = `${sealer.kind} ${sealer.hardwareBacked ? 'hardware-backed' : 'NOT hardware-backed'} key ${sealer.keyId.slice(0, 16)}…`
  const identity = sealer.details.tpmIdentity
  return identity === undefined ? line : `${line}\n  TPM         ${identity}`
}

/** A sealed capsule (`seal`, `seal-image`): `what` is the file or image sealed. */
export function sealResultText(
  what: string,
  r: {
    capsuleId: string
    cid: string
    policy: string
    registerTransaction: string
    announced: { ok: boolean; recipients?: number; reason?: string }
  },
): string {
  const a = r.announced
  return `Sealed ${what}\n  capsule id   ${r.capsuleId}\n  CID          ${r.cid}\n  policy       ${r.policy}\n  register tx  ${r.registerTransaction}\n  announced    ${a.ok ? `yes (${a.recipients} peer(s))` : `no (${a.reason}); serve provides it from the blockstore`}\n`
}

/** A capsule moved to another policy (`movePolicy`). */
export function movePolicyResultText(r: MovePolicyResult): string {
  const d = r.deployedPolicy
  const deployment = d ? ` (deployment ${d.transactionHash}${d.reused ? ', re-used' : ''})` : ''
  return (
    `Moved ${r.capsuleId}\n  from policy  ${r.previousPolicy}\n  to policy    ${r.policy}${deployment}\n` +
    `  update tx    ${r.transactionHash ?? 'none (the chain held it already)'}\n` +
    `  key record   ${r.recordUpdated ? 'updated' : 'named it already'}\n`
  )
}

/** The owner brought back onto a new TPM or Pi (`recoverOwnerNode`). */
export function recoverResultText(r: RecoverOwnerNodeResult): string {
  const { failed, notPinned, chain } = r
  return (
    `Recovered ${r.recovered.length} capsule key(s) for ${r.owner} (peer ${r.peerId}) onto ${r.sealer.kind} key ${r.sealer.keyId.slice(0, 16)}…\n` +
    `  chain keyguard record updated for ${chain.keyguardUpdated.length} capsule(s); ${chain.revoked.length} revoked skipped\n` +
    (failed.length > 0
      ? `  FAILED: ${failed.map((f) => `${f.capsuleId} (${f.reason ?? f.code})`).join(', ')}\n`
      : '') +
    (notPinned.length > 0
      ? `  not pinned here: ${notPinned.map((f) => f.capsuleId).join(', ')}\n`
      : '')
  )
}

/** The keyguard daemon's lines (`pi-node status` and `serve`): chain cursor, releases, fast path. */
export function keyguardStatusText(kg: KeyguardStatus, updatedAt?: string): string {
  return (
    `  keyguard    ${kg.running ? 'running' : 'stopped'}, chain ${kg.chain.chainId} head ${kg.chain.head ?? '?'} cursor ${kg.chain.cursor?.number ?? '-'} (${kg.chain.confirmations} confirmations${kg.chain.finality && kg.chain.finality !== 'latest' ? `, ${kg.chain.finality}` : ''}${kg.chain.finalityLag?.lagging ? `, LAGGING ${kg.chain.finalityLag.lagSeconds} s of ${kg.chain.finalityLag.grantWindowSeconds} s grant window` : ''})` +
    `${updatedAt ? `, as of ${updatedAt}` : ''}\n` +
    `              releases pending ${kg.releases.pending}, in flight ${kg.releases.inFlight}; released ${kg.counters.released ?? 0}, failed ${kg.counters['release-failed'] ?? 0}\n` +
    `              fast path ${kg.fastPath.enabled ? `on (audit pending ${kg.fastPath.auditPending})${kg.fastPath.halted ? `, HALTED (${kg.fastPath.halted.error}): ${kg.fastPath.halted.hint}` : ''}` : 'off'}\n`
  )
}
