/**
 * `OwnerNode.movePolicy`: `moveCapsulePolicy` (ADR 0077) from the node's config — the owner
 * account unwrapped by the sealer for the call, its transactions under the owner lock, the key
 * store of the data folder, and a chain client over the same RPCs and quorum `serve`'s keyguard
 * reads, so the record follows what that keyguard will read. Safe while `serve` runs: the
 * keyguard's key store re-reads a record whose file changed.
 *
 * The new policy is an address, or an expression deployed first the way `seal` deploys one
 * (solc in a child, compiled once per source; `transactorPolicyDeployer`): its address is
 * computed from the nonce the owner signed and the move names it only once a quorum of the
 * node's RPCs reads there the code the expression compiles to (`POLICY_CODE` otherwise), so one
 * lying RPC cannot move the capsule to another contract, e.g. an older, laxer policy of the
 * owner's (ADR 0091). The deployment is noted in the capsule's folder (`policy-next.json`)
 * before the move, so a run that a crash or a timeout cut off after the deployment re-uses it
 * when run again with the same expression (and a quorum reads its code there) instead of
 * deploying another.
 * Once moved, the folder's `policy.json` / `policy.sol` describe the new policy (the old ones
 * are kept as `policy-<old address>.*`) and `capsule.json` names it.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeJsonAtomic } from '@digicap/cli-kit'
import { createProvider } from '@digicap/contracts'
import { jsonRpcQuorum } from '@digicap/contracts/light'
import { ethersChainClient } from '@digicap/keyguard'
import { childProcessPolicyCompiler } from '../policy/child-compiler.ts'
import { cachedPolicyCompiler } from '../policy/policy-cache.ts'
import {
  compilePolicyExpression,
  expectedPolicyCode,
  quorumReadsPolicyCode,
} from '../policy/policy-code.ts'
import { transactorPolicyDeployer } from '../policy/transactor-policy-deployer.ts'
import type { DeployedPolicyInfo } from '../policy/types.ts'
import {
  ethersPolicyUpdater,
  type MoveCapsulePolicyResult,
  moveCapsulePolicy,
} from '../registry/move-policy.ts'
import { type OwnerNodeParts, ownerTransactions, withOwnerAccount } from './components.ts'

export interface MovePolicyOptions {
  /** 0x-prefixed 32-byte capsule id. */
  capsuleId: string
  /** The new policy contract's address. Give this or `expression`. */
  policy?: string
  /**
   * Or the new policy as an expression (the grammar of `seal`'s `policy`): deployed from the
   * owner account first. Give this or `policy`.
   */
  expression?: string
  /** How long to wait for the chain to read the new policy, ms. Default 120 000. */
  confirmTimeoutMs?: number
}

export interface MovePolicyResult extends MoveCapsulePolicyResult {
  /** The new policy's deployment, when it was given as an expression. */
  deployedPolicy?: { address: string; transactionHash: string; reused: boolean }
}

/** A deployment made for a move that has not finished (`policy-next.json`). */
interface PendingDeployment extends DeployedPolicyInfo {
  expression: string
}

export async function movePolicyOfOwnerNode(
  parts: OwnerNodeParts,
  options: MovePolicyOptions,
): Promise<MovePolicyResult> {
  const { config, paths, sealer, keyStore, owner } = parts
  if ((options.policy === undefined) === (options.expression === undefined)) {
    throw new TypeError('movePolicy takes either policy (an address) or expression, not both')
  }
  if (options.expression !== undefined) {
    // A malformed expression fails here, before the owner key is unwrapped or anything sent.
    const { parsePolicyExpression } = await import('@digicap/contracts')
    parsePolicyExpression(options.expression)
  }
  const dir = join(paths.capsules, options.capsuleId.toLowerCase())
  const pendingFile = join(dir, 'policy-next.json')
  const rpcUrls = [config.rpcUrl, ...(config.rpcUrls ?? [])]
  const quorum = config.quorum !== undefined ? { quorum: config.quorum } : {}
  const providers = rpcUrls.map((url) => createProvider(url, config.chainId))
  try {
    const chain = ethersChainClient({
      providers,
      ...quorum,
      addresses: config.contracts,
      chainId: BigInt(config.chainId),
    })
    return await withOwnerAccount(paths, sealer, config, async ({ wallet, transactor }) => {
      const serialize = <T>(fn: () => Promise<T>) => ownerTransactions(paths, fn)
      let deployed: PendingDeployment | undefined
      let reused = false
      if (options.expression !== undefined) {
        const compile = cachedPolicyCompiler(paths.policyCache, childProcessPolicyCompiler())
        const expectedCodeOf = async (expression: string) =>
          expectedPolicyCode(
            (await compilePolicyExpression(expression, compile)).compiled,
            config.contracts.nodeRegistry,
          )
        const pending = await readJson<PendingDeployment>(pendingFile)
        if (
          pending?.expression === options.expression &&
          typeof pending.address === 'string' &&
          (await quorumReadsPolicyCode(
            jsonRpcQuorum({ rpcUrls, ...quorum }),
            pending.address,
            await expectedCodeOf(options.expression),
          ))
        ) {
          deployed = pending
          reused = true
        } else {
          // The same deployer and code check as `seal`: the address is computed from the
          // nonce the owner signed, and returned once a quorum of the RPCs reads its code.
          const info = await transactorPolicyDeployer(transactor, {
            nodeRegistry: config.contracts.nodeRegistry,
            serialize,
            rpcUrls,
            ...quorum,
            compile,
          }).deploy(options.expression)
          deployed = { ...info, expression: options.expression }
          await mkdir(dir, { recursive: true, mode: 0o700 })
          await writeJsonAtomic(pendingFile, deployed)
        }
      }
      const moved = await moveCapsulePolicy(
        {
          capsuleId: options.capsuleId,
          policy: deployed?.address ?? (options.policy as string),
          ...(options.confirmTimeoutMs === undefined
            ? {}
            : { confirmTimeoutMs: options.confirmTimeoutMs }),
        },
        {
          updater: ethersPolicyUpdater(wallet, { contracts: config.contracts, serialize }),
          keyStore,
          chain,
          // Records stored before they named their owner are this owner's (keyguard ADR 0071).
          owners: [owner.address],
        },
      )
      await recordMoveInFolder(dir, moved, deployed)
      return {
        ...moved,
        ...(deployed
          ? {
              deployedPolicy: {
                address: moved.policy,
                transactionHash: deployed.transactionHash,
                reused,
              },
            }
          : {}),
      }
    })
  } finally {
    for (const p of providers) p.destroy()
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  return readFile(file, 'utf8')
    .then((text) => JSON.parse(text) as T)
    .catch(() => undefined)
}

/**
 * The capsule's folder (when this node sealed it) after a move: the old policy's files kept
 * under its address, the new policy's written, `capsule.json` naming it, the pending note gone.
 * Written after the chain and the record moved: the folder is the owner's notes, not the truth.
 */
async function recordMoveInFolder(
  dir: string,
  moved: MoveCapsulePolicyResult,
  deployed: PendingDeployment | undefined,
): Promise<void> {
  const capsule = await readJson<Record<string, unknown>>(join(dir, 'capsule.json'))
  if (capsule && capsule.policy !== moved.policy) {
    const old = String(capsule.policy ?? moved.previousPolicy).toLowerCase()
    for (const ext of ['json', 'sol']) {
      await rename(join(dir, `policy.${ext}`), join(dir, `policy-${old}.${ext}`)).catch(() => {})
    }
    if (deployed) {
      const { expression, source, ...info } = deployed
      await writeFile(join(dir, 'policy.sol'), source, { mode: 0o600 })
      await writeJsonAtomic(join(dir, 'policy.json'), { ...info, expression })
    } else {
      await writeJsonAtomic(join(dir, 'policy.json'), { address: moved.policy })
    }
    await writeJsonAtomic(join(dir, 'capsule.json'), {
      ...capsule,
      policy: moved.policy,
      policyMovedAt: new Date().toISOString(),
      ...(moved.transactionHash ? { policyMoveTransaction: moved.transactionHash } : {}),
    })
  }
  await rm(join(dir, 'policy-next.json'), { force: true })
}
