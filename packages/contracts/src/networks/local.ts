import type { DigicapNetwork } from './types.ts'

/**
 * `local`: a fresh anvil (chain id 31337, the `test … junk` dev mnemonic) on which anvil's
 * first account (`0xf39F…2266`) ran `deployDigicap` as its first transactions. Contract
 * addresses follow from the deployer and its nonces alone (CREATE), so every such chain has
 * them: NodeRegistry at nonce 0, AccessController at nonce 1, the CapsuleRegistry the
 * controller creates (its own nonce 1), CommitteeSortition at nonce 3 and AttestationHub at
 * nonce 4 (nonce 2 names the controller in the registry). A test deploys and checks them.
 */
export const LOCAL_NETWORK: DigicapNetwork = Object.freeze({
  name: 'local',
  chainId: 31337,
  rpcUrl: 'http://127.0.0.1:8545',
  addresses: Object.freeze({
    capsuleRegistry: '0xCafac3dD18aC6c6e92c921884f9E4176737C052c',
    nodeRegistry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    accessController: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    committeeSortition: '0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9',
    attestationHub: '0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9',
  }),
  deployBlock: 1,
})

/** The account whose first transactions deploy `local` (anvil's dev account 0). */
export const LOCAL_DEPLOYER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'
