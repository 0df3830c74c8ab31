/**
 * The fast-path request an executor signs, as the tests build it: one copy of the EIP-712 fields
 * (capsule, executor, a fresh ephemeral key of the executor side, the chain's measurement, no job
 * parameters, no fee, a random nonce, two minutes of validity), any of them overridden.
 */
import {
  type AccessRequest,
  type AccessResponse,
  addressToBytes,
  signAccessRequest,
} from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes, type Wallet } from 'ethers'
import type { Chain, ExecutorSide } from './world.ts'

/** The AccessController's EIP-712 domain on `chain`. */
export function accessDomain(chain: Chain) {
  return {
    chainId: BigInt(chain.addresses.chainId),
    verifyingContract: chain.addresses.accessController as `0x${string}`,
  }
}

export interface SignedRequestOptions {
  capsuleId: string
  /** The executor's node that holds the ephemeral key's private half. */
  side: ExecutorSide
  /** Who signs (default `chain.executor`); also the `executor` field unless `fields` names one. */
  signer?: Wallet
  /** Seconds until expiry (default 120); `fields.expiry` wins. */
  expiresIn?: number
  /** Fields that replace the defaults (`jobParamsHash` follows `jobParams` unless given). */
  fields?: Partial<Omit<AccessRequest, 'signature'>>
}

export function signedRequest(chain: Chain, o: SignedRequestOptions): AccessRequest {
  const signer = o.signer ?? chain.executor
  const fields = o.fields ?? {}
  const jobParams = fields.jobParams ?? new Uint8Array(0)
  return signAccessRequest(
    {
      capsuleId: getBytes(o.capsuleId),
      executor: addressToBytes(signer.address as `0x${string}`),
      ephemeralKey: fields.ephemeralKey ?? getBytes(o.side.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(jobParams),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + (o.expiresIn ?? 120)),
      jobParams,
      ...fields,
    },
    accessDomain(chain),
    getBytes(signer.privateKey),
  )
}

/** `granted`, or `<reasonCode>:<reason>` of a refusal: one string to compare. */
export const outcome = (res: AccessResponse): string =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason}` : res.status
