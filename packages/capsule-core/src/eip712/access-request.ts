/**
 * The EIP-712 struct of a fast-path access request, shared by the AccessController contract
 * (`hashSignedRequest`), the wire protocol and every signer: one definition, so the three
 * cannot drift apart.
 */
import { type Address, normalizeAddress } from '../encoding/address.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { TypedDataDomain, TypedDataField } from './typed-data.ts'

/** `EIP712Domain.name` of every Digicap access request. */
export const ACCESS_DOMAIN_NAME = 'DigicapAccessController'
/** `EIP712Domain.version` of every Digicap access request. */
export const ACCESS_DOMAIN_VERSION = '1'

/** The EIP-712 type of an access request (every field but the signature). */
export const ACCESS_REQUEST_TYPES: { AccessRequest: TypedDataField[] } = {
  AccessRequest: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'executor', type: 'address' },
    { name: 'ephemeralKey', type: 'bytes32' },
    { name: 'measurement', type: 'bytes32' },
    { name: 'jobParamsHash', type: 'bytes32' },
    { name: 'fee', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'expiry', type: 'uint64' },
  ],
}

/** The domain of access requests: `name`/`version` fixed, the chain and its AccessController. */
export interface AccessRequestDomain extends TypedDataDomain {
  name: typeof ACCESS_DOMAIN_NAME
  version: typeof ACCESS_DOMAIN_VERSION
  chainId: bigint
  verifyingContract: Address
}

/**
 * The EIP-712 domain of an AccessController.
 *
 * @throws {InvalidArgumentError} for a chain id that is not a positive integer below 2^256,
 * or a bad address.
 * @example
 * ```ts
 * const domain = accessRequestDomain(31337n, addresses.accessController)
 * ```
 */
export function accessRequestDomain(
  chainId: bigint | number,
  accessController: string,
): AccessRequestDomain {
  const id =
    typeof chainId === 'number' && Number.isSafeInteger(chainId) ? BigInt(chainId) : chainId
  if (typeof id !== 'bigint' || id <= 0n || id >= 1n << 256n) {
    throw new InvalidArgumentError('domain.chainId must be a positive integer', {
      details: { field: 'chainId' },
    })
  }
  return {
    name: ACCESS_DOMAIN_NAME,
    version: ACCESS_DOMAIN_VERSION,
    chainId: id,
    verifyingContract: normalizeAddress(accessController, 'verifyingContract'),
  }
}
