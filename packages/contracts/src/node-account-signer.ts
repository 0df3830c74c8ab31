/**
 * A {@link DigicapSigner} whose key is not in this process: the node's JSON-RPC signs
 * (`eth_signTypedData_v4`, `eth_signTransaction`) for one of its own accounts, as anvil does
 * for its dev accounts and as a remote signer or a wallet behind an RPC does. For tests of
 * "any signer" paths; it checks nothing itself (`signTypedDataWith` and `digicapEthersSigner`
 * check the answers). A refusal of the node is capsule-core's `CapsuleSignatureError`.
 */
import {
  CapsuleSignatureError,
  type DigicapSigner,
  type Hex,
  normalizeAddress,
  rpcCall,
  type TypedData,
} from '@digicap/capsule-core'
import { Transaction, toQuantity } from 'ethers'

const DOMAIN_FIELDS = [
  ['name', 'string'],
  ['version', 'string'],
  ['chainId', 'uint256'],
  ['verifyingContract', 'address'],
  ['salt', 'bytes32'],
] as const

async function call(rpcUrl: string, method: string, params: unknown[]): Promise<Hex> {
  const answer = await rpcCall(rpcUrl, method, params)
  if (answer.error !== undefined || typeof answer.result !== 'string') {
    throw new CapsuleSignatureError(`The node did not sign (${method})`, {
      details: { rpcUrl, error: JSON.stringify(answer.error ?? answer.result).slice(0, 200) },
    })
  }
  return answer.result as Hex
}

/** Typed data as the JSON-RPC takes it: the domain type spelled out, integers as decimal text. */
function typedDataJson(td: TypedData): string {
  const domain = td.domain as Record<string, unknown>
  const EIP712Domain = DOMAIN_FIELDS.filter(([name]) => domain[name] !== undefined).map(
    ([name, type]) => ({ name, type }),
  )
  return JSON.stringify({ ...td, types: { ...td.types, EIP712Domain } }, (_, v) =>
    typeof v === 'bigint' ? v.toString() : v,
  )
}

/**
 * @example
 * ```ts
 * const executor = nodeAccountSigner(anvil.rpcUrl, anvil.accounts[4]) // no key here
 * await runCapsule({ network: 'local', signer: executor, identity, cid })
 * ```
 */
export function nodeAccountSigner(rpcUrl: string, address: string): DigicapSigner {
  const account = normalizeAddress(address, 'address')
  return {
    address: account,
    signTypedData: (td) => call(rpcUrl, 'eth_signTypedData_v4', [account, typedDataJson(td)]),
    signTransaction(unsignedSerialized) {
      const tx = Transaction.from(unsignedSerialized)
      const q = (v: bigint | null) => (v === null ? undefined : toQuantity(v))
      return call(rpcUrl, 'eth_signTransaction', [
        {
          from: account,
          ...(tx.to === null ? {} : { to: tx.to }),
          type: toQuantity(tx.type ?? 0),
          chainId: toQuantity(tx.chainId),
          nonce: toQuantity(tx.nonce),
          gas: toQuantity(tx.gasLimit),
          value: toQuantity(tx.value),
          input: tx.data,
          ...(tx.type === 2
            ? {
                maxFeePerGas: q(tx.maxFeePerGas),
                maxPriorityFeePerGas: q(tx.maxPriorityFeePerGas),
                accessList: tx.accessList ?? [],
              }
            : { gasPrice: q(tx.gasPrice) }),
        },
      ])
    },
  }
}
