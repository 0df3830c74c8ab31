/**
 * `@digicap/capsule-core/light`: the error classes, hex, receiver parsing and the JSON-RPC
 * reads, as the main entry has them, without the crypto, CBOR and curves (~35 modules). For
 * command-line plumbing that only names errors and parses flags (`@digicap/cli-kit`'s shell,
 * `--help`): the classes are the same objects as the main entry's (one shared chunk), so
 * `instanceof` holds across both entries (ADR 0046).
 */
export { type RpcAnswer, redactRpcUrl, rpcCall, rpcChainId } from './chain/json-rpc.ts'
export type { Hex, HexToBytesOptions } from './encoding/hex.ts'
export { hexToBytes, isHex, toHex } from './encoding/hex.ts'
export * from './errors.ts'
export type { WarmFileLanesOptions } from './file/threads.ts'
export { warmFileLanes } from './file/warm.ts'
export { parseReceiver } from './receiver.ts'
