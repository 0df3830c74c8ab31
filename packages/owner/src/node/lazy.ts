/**
 * `init` and `recover` behind dynamic imports: each loads its modules (libp2p and helia for
 * `recover`, the contract deployer for `init`) only when called, so importing
 * `@digicap/owner/node` for `status` or `seal` does not load them.
 */
import type { OwnerNodeComponents } from './components.ts'
import type { InitOwnerNodeOptions, InitOwnerNodeResult } from './init.ts'
import type { RecoverOwnerNodeOptions, RecoverOwnerNodeResult } from './recover.ts'

/** `init`: creates the sealer key, the owner and the config; deploys the contracts with `deploy` (./init.ts). */
export async function initOwnerNode(
  options: InitOwnerNodeOptions,
  components: OwnerNodeComponents = {},
): Promise<InitOwnerNodeResult> {
  return (await import('./init.ts')).initOwnerNode(options, components)
}

/** `recover`: restores a node from the paper words (./recover.ts). */
export async function recoverOwnerNode(
  options: RecoverOwnerNodeOptions,
  components: OwnerNodeComponents = {},
): Promise<RecoverOwnerNodeResult> {
  return (await import('./recover.ts')).recoverOwnerNode(options, components)
}
