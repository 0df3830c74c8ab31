/**
 * @packageDocumentation
 *
 * `@digicap/contracts/testing` — a real local chain for tests: spawns the anvil binary from the
 * `@foundry-rs/anvil-<platform>` npm package on 127.0.0.1 with a free port, waits until it
 * answers, and hands back a tuned ethers provider and anvil's default funded accounts.
 * `startRpcProxy` puts a JSON-RPC proxy in front of it for fault injection (a lying or counted
 * RPC). Kept apart from the main entry so production code never pulls it in, and anvil is not
 * a dependency of this package (ADR 0019): add `@foundry-rs/anvil-<platform>` (the platforms
 * you test on: `linux-amd64`, `linux-arm64`, `darwin-arm64`, ...) as optional dev
 * dependencies of the project that starts anvil, or set `ANVIL_PATH`.
 *
 * @example
 * ```ts
 * import { startAnvil } from '@digicap/contracts/testing'
 * import { deployDigicap } from '@digicap/contracts'
 *
 * const anvil = await startAnvil()
 * const addresses = await deployDigicap(anvil.signers[0])
 * const snap = await anvil.snapshot()
 * // ... a test ...
 * await anvil.revert(snap)
 * await anvil.stop()
 * ```
 */

export type { Anvil, StartAnvilOptions } from './anvil.ts'
export { ANVIL_MNEMONIC, resolveAnvilBinary, startAnvil } from './anvil.ts'
export { nodeAccountSigner } from './node-account-signer.ts'
export type { LaggingLogIndex, RpcCall, RpcProxy, RpcRewrite } from './rpc-proxy.ts'
export { laggingLogIndex, startRpcProxy } from './rpc-proxy.ts'
