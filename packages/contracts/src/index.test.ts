import { describe, expect, it } from 'vitest'

describe('public surface', () => {
  it('exports exactly these names from the main entry', async () => {
    expect(Object.keys(await import('./index.ts')).sort()).toMatchInlineSnapshot(`
      [
        "ACCESS_REQUEST_TYPES",
        "AnvilError",
        "ContractRevertError",
        "DEFAULT_PARAMETERS",
        "DEFAULT_SETTLEMENT_PARAMETERS",
        "DeploymentError",
        "GENERATED_POLICY_CONTRACT",
        "LOCAL_DEPLOYER",
        "LOCAL_NETWORK",
        "NETWORKS",
        "POLICY_GENERATOR_VERSION",
        "POLICY_LIMITS",
        "PolicyCompileError",
        "PolicyExpressionError",
        "QuorumError",
        "Reason",
        "TransactionError",
        "accessControllerAbi",
        "accessControllerBytecode",
        "accessRequestDomain",
        "after",
        "all",
        "allowlist",
        "any",
        "attestationHubAbi",
        "attestationHubBytecode",
        "attested",
        "before",
        "capsuleRegistryAbi",
        "committeeSortitionAbi",
        "committeeSortitionBytecode",
        "computeGrantId",
        "connectDigicap",
        "connectPolicy",
        "connectSettlement",
        "createProvider",
        "createRpcQuorum",
        "decodeRevert",
        "denylist",
        "deployDigicap",
        "deploySettlement",
        "deploymentFile",
        "digicapEthersSigner",
        "environment",
        "ethersSigner",
        "fee",
        "formatPolicyExpression",
        "generatePolicySource",
        "hashAccessRequest",
        "iAccessPolicyAbi",
        "iCapsuleRegistryAbi",
        "iNodeRegistryAbi",
        "jobParamsHash",
        "maxRuns",
        "minReputation",
        "nodeRegistryAbi",
        "nodeRegistryBytecode",
        "normalizePolicyExpression",
        "not",
        "parseEvents",
        "parsePolicyExpression",
        "policyLibrarySources",
        "privateKeyAccount",
        "queueAdminCalls",
        "readDeployment",
        "reasonName",
        "requiresAttestation",
        "sendAdminCalls",
        "serialSigner",
        "settlementRoleCalls",
        "withRevertDecoding",
      ]
    `)
  })

  it('exports exactly these names from the compiler entry', async () => {
    expect(Object.keys(await import('./compiler.ts')).sort()).toMatchInlineSnapshot(`
      [
        "COMPILER_SETTINGS",
        "POLICY_SOURCE_NAME",
        "SOLC_VERSION",
        "compilePolicy",
        "compileSolidity",
        "deployPolicy",
        "verifyPolicyBytecode",
      ]
    `)
  })

  it('exports exactly these names from the testing entry', async () => {
    expect(Object.keys(await import('./testing.ts')).sort()).toMatchInlineSnapshot(`
      [
        "ANVIL_MNEMONIC",
        "nodeAccountSigner",
        "resolveAnvilBinary",
        "startAnvil",
        "startRpcProxy",
      ]
    `)
  })

  it('exports exactly these names from the light entry', async () => {
    expect(Object.keys(await import('./light.ts')).sort()).toMatchInlineSnapshot(`
      [
        "COMPILER_SETTINGS",
        "ContractRevertError",
        "GENERATED_POLICY_CONTRACT",
        "POLICY_GENERATOR_VERSION",
        "POLICY_LIMITS",
        "POLICY_SOURCE_NAME",
        "PolicyCompileError",
        "PolicyExpressionError",
        "REGISTER_CAPSULE_SIGNATURE",
        "SOLC_VERSION",
        "TransactionError",
        "abiEncodeParams",
        "after",
        "all",
        "allowlist",
        "any",
        "attested",
        "before",
        "denylist",
        "environment",
        "fee",
        "formatPolicyExpression",
        "functionSelector",
        "generatePolicySource",
        "maxRuns",
        "minReputation",
        "normalizePolicyExpression",
        "not",
        "parsePolicyExpression",
        "policyCreationData",
        "privateKeyTransactor",
        "registerCapsuleCallData",
        "requiresAttestation",
      ]
    `)
  })
})
