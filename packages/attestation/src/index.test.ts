import { expect, it } from 'vitest'
import * as api from './index.ts'

it('the public surface changes only on purpose', () => {
  expect(Object.keys(api).sort()).toEqual([
    'ATTESTATION_RECORD_VERSION',
    'AttestationRecordError',
    'AttestationRefusedError',
    'BINDING_GRANT_ID_LENGTH',
    'BINDING_MAX_KEY_LENGTH',
    'BINDING_NONCE_LENGTH',
    'CredentialError',
    'DEFAULT_QUOTE_PCRS',
    'EVENT_KINDS',
    'EVENT_LOG_VERSION',
    'EventLogFormatError',
    'MAX_EVENTS',
    'PCR23_RESET_VALUE',
    'QuoteVerificationError',
    'RunPcrNotResetError',
    'TPM_ALG',
    'TPM_GENERATED_VALUE',
    'TPM_ST_ATTEST_QUOTE',
    'TpmFormatError',
    'activateAttestationKey',
    'attestationRecordHash',
    'checkCleanup',
    'checkEventLog',
    'checkQuoteRollback',
    'checkQuoteSequence',
    'createActivationCache',
    'decodeAttestationRecord',
    'decodeEventLog',
    'encodeAttestationRecord',
    'encodeCredentialFile',
    'encodeEventLog',
    'expectedRunMeasurement',
    'fromWireEvidence',
    'importAttestationKey',
    'makeCredential',
    'openRunMeasurement',
    'parsePublic',
    'parsePublicArea',
    'parseQuoteAttest',
    'parseSignature',
    'pcrCompositeDigest',
    'quoteBinding',
    'replayEventLog',
    'requestAttestation',
    'requireAttestedRelease',
    'runEvents',
    'toWireEvidence',
    'verifyAttestation',
    'verifyPhase',
    'verifyQuote',
  ])
})

it('the agent entry exports exactly these names', async () => {
  const agent = await import('./agent/index.ts')
  expect(Object.keys(agent).sort()).toEqual([
    'DEFAULT_AK_HANDLE',
    'DEFAULT_ATTEST_CHALLENGES',
    'DEFAULT_EK_HANDLES',
    'RUN_PCR',
    'createAttestationAgent',
    'serveAttestation',
  ])
})
