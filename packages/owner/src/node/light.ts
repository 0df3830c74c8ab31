/**
 * `@digicap/owner/node/light`: the owner node's config and its `status`, read without building
 * the node. Its modules load no ethers, libp2p, helia, solc, capsule-core codecs and curves,
 * mnemonic code or Ed25519: what `pi-node status` (and every command's config read) needs
 * (ADR 0051). The same functions as `@digicap/owner/node`, which re-exports them.
 */
import type { OwnerNodeConfig } from './config.ts'
import { type OwnerNodeComponents, openOwnerNodeParts } from './parts.ts'
import { type OwnerNodeStatus, statusOfOwnerNode } from './status.ts'

export {
  applyOwnerNodeEnv,
  loadOwnerNodeConfig,
  type OwnerNodeConfig,
  ownerNodePaths,
} from './config.ts'
export {
  SEAL_SOCKET_VERSION,
  type SealInputRef,
  type SealRequest,
  SealSocketError,
} from './seal-socket-protocol.ts'
export { type SealViaDaemonOptions, sealViaDaemon } from './seal-via-daemon.ts'
export type { OwnerNodeStatus } from './status.ts'
export { keyguardStatusText, sealerStatusText, sealResultText } from './text.ts'

/**
 * The node's status (`pi-node status`): config, sealer, owner, card, chain, operator,
 * capsules and the daemon's `serve.json`. Never throws for the chain.
 * @throws {NotInitialisedError} if the data folder has no owner file.
 * @example
 * ```ts
 * const s = await readOwnerNodeStatus(await loadOwnerNodeConfig('/var/lib/digicap'))
 * ```
 */
export async function readOwnerNodeStatus(
  config: OwnerNodeConfig,
  components: OwnerNodeComponents = {},
): Promise<OwnerNodeStatus> {
  return statusOfOwnerNode(await openOwnerNodeParts(config, components))
}
