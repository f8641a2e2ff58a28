import { ClientCertificateCredential, ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { createTokenCredential } from './graph-credential.factory';
import { SecretValue } from './graph-mail.config';

const TENANT = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const CLIENT = '11111111-2222-4333-8444-555555555555';

describe('createTokenCredential', () => {
  it('builds the credential the configuration names (no network until getToken)', () => {
    const host = 'https://login.microsoftonline.com';
    expect(createTokenCredential({ kind: 'client-secret', tenantId: TENANT, clientId: CLIENT, clientSecret: new SecretValue('s') }, host)).toBeInstanceOf(ClientSecretCredential);
    expect(createTokenCredential({ kind: 'client-certificate', tenantId: TENANT, clientId: CLIENT, certificatePath: '/nonexistent.pem' }, host)).toBeInstanceOf(
      ClientCertificateCredential,
    );
    expect(createTokenCredential({ kind: 'managed-identity' }, host)).toBeInstanceOf(ManagedIdentityCredential);
    expect(createTokenCredential({ kind: 'managed-identity', clientId: CLIENT }, host)).toBeInstanceOf(ManagedIdentityCredential);
  });
});
