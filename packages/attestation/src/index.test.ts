import { expect, it } from 'vitest'
import * as api from './index.ts'

it('the public surface changes only on purpose', () => {
  expect(Object.keys(api).sort()).toEqual([
    'BINDING_GRANT_ID_LENGTH',
    'BINDING_MAX_KEY_LENGTH',
    'BINDING_NONCE_LENGTH',
    'CredentialError',
    'DEFAULT_QUOTE_PCRS',
    'QuoteVerificationError',
    'TPM_ALG',
    'TPM_GENERATED_VALUE',
    'TPM_ST_ATTEST_QUOTE',
    'TpmFormatError',
    'checkQuoteSequence',
    'encodeCredentialFile',
    'importAttestationKey',
    'makeCredential',
    'parsePublic',
    'parsePublicArea',
    'parseQuoteAttest',
    'parseSignature',
    'pcrCompositeDigest',
    'quoteBinding',
    'verifyQuote',
  ])
})
