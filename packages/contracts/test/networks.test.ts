import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { deployDigicap } from '../src/deploy.ts'
import { LOCAL_DEPLOYER, LOCAL_NETWORK, NETWORKS } from '../src/networks/index.ts'

let anvil: Anvil
beforeAll(async () => {
  anvil = await startAnvil({ accounts: 1 })
})
afterAll(async () => {
  await anvil?.stop()
})

describe('LOCAL_NETWORK', () => {
  it('is where deployDigicap from anvil account 0 puts the contracts on a fresh anvil', async () => {
    const signer = anvil.signers[0]!
    expect(signer.address).toBe(LOCAL_DEPLOYER)
    const deployed = await deployDigicap(signer)
    expect({
      chainId: Number(deployed.chainId),
      addresses: {
        capsuleRegistry: deployed.capsuleRegistry,
        nodeRegistry: deployed.nodeRegistry,
        accessController: deployed.accessController,
        committeeSortition: deployed.committeeSortition,
        attestationHub: deployed.attestationHub,
      },
      deployBlock: deployed.deployBlock,
    }).toEqual({
      chainId: LOCAL_NETWORK.chainId,
      addresses: LOCAL_NETWORK.addresses,
      deployBlock: LOCAL_NETWORK.deployBlock,
    })
  })

  it('cannot be changed at run time', () => {
    expect(() => {
      ;(LOCAL_NETWORK.addresses as { nodeRegistry: string }).nodeRegistry = '0x00'
    }).toThrow(TypeError)
    expect(() => {
      ;(NETWORKS as Record<string, unknown>).evil = LOCAL_NETWORK
    }).toThrow(TypeError)
    expect(NETWORKS.local).toBe(LOCAL_NETWORK)
  })
})
