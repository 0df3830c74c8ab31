/**
 * An executor for the length of one call: its libp2p node (the registered identity), its
 * chain client, and the sandboxes. The ethers objects stay in here; nothing of them leaks out.
 */
import { createProvider } from '@digicap/contracts'
import {
  createExecutor,
  defaultSandboxes,
  type Executor,
  type ExecutorChain,
  ethersExecutorChain,
  type SandboxSet,
} from '@digicap/executor'
import {
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  privateKeyFromSeed,
} from '@digicap/p2p'
import { bytesToHex } from '@noble/hashes/utils.js'
import { Wallet } from 'ethers'
import { SignerUnsupportedError } from '../errors.ts'
import type { DigicapNetwork } from '../networks/registry.ts'
import { type DigicapSigner, localKeyOf } from '../signer/signer.ts'

export interface ExecutorIdentity {
  /** The executor's account (made with `localSigner`: the executor signs in process). */
  readonly signer: DigicapSigner
  /** The 32-byte seed of the libp2p identity registered in NodeRegistry. */
  readonly identity: Uint8Array
}

export interface ExecutorSession {
  readonly node: DigicapNode
  readonly chain: ExecutorChain
  readonly executor: Executor
  stop(): Promise<void>
}

export interface ExecutorSessionOptions {
  readonly listen?: readonly string[] | undefined
  readonly peers?: readonly string[] | undefined
  readonly sandboxes?: SandboxSet | undefined
  /** Start the key-release handler (runs need it; registration does not). */
  readonly start: boolean
}

export async function openExecutorSession(
  network: DigicapNetwork,
  who: ExecutorIdentity,
  options: ExecutorSessionOptions,
): Promise<ExecutorSession> {
  const key = localKeyOf(who.signer)
  if (key === undefined) {
    throw new SignerUnsupportedError('Running a capsule needs the executor key in this process', {
      details: { address: who.signer.address },
      hint: 'The executor signs access requests and results itself: pass localSigner(key).',
    })
  }
  const provider = createProvider(network.rpcUrl, network.chainId)
  const wallet = new Wallet(`0x${bytesToHex(key)}`, provider)
  let node: DigicapNode | undefined
  try {
    node = await createDigicapNode({
      privateKey: await privateKeyFromSeed(who.identity),
      listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: options.peers ?? [],
    })
    const chain = ethersExecutorChain({
      addresses: { chainId: String(network.chainId), ...network.addresses },
      signer: wallet,
    })
    const executor = createExecutor({ keyguardAddrs: options.peers ?? [] })({
      libp2p: node.libp2p,
      store: heliaCapsuleStore(node.helia),
      chain,
      wallet,
      sandboxes: options.sandboxes ?? defaultSandboxes(),
    })
    if (options.start) await executor.start()
    const opened = node
    return {
      node: opened,
      chain,
      executor,
      async stop() {
        await executor.stop()
        await opened.stop()
        provider.destroy()
      },
    }
  } catch (err) {
    await node?.stop()
    provider.destroy()
    throw err
  }
}
