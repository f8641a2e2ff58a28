/**
 * Builds the app-only `TokenCredential` (`@azure/identity`) chosen by configuration.
 *
 * The only importer of `@azure/identity` in the mail area.
 */
import { ClientCertificateCredential, ClientSecretCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { KNOWN_AUTHORITY_HOSTS, type GraphCredentialConfig } from './graph-mail.config';

export type { TokenCredential };

/**
 * Create the credential.
 *
 * NOTE: for an authority host that is not one of Microsoft's public ones (a sovereign-cloud alias or a test
 * server), instance discovery is switched off, so the credential asks only that host for its OpenID metadata.
 *
 * @param credential - the configured kind and its settings
 * @param authorityHost - Entra ID authority origin, e.g. `https://login.microsoftonline.com` (ignored for managed identity)
 * @returns a credential whose `getToken(scope)` runs the OAuth 2.0 client-credentials grant (RFC 6749 4.4) with a
 *   client secret (RFC 6749 2.3.1) or a certificate-signed assertion (RFC 7523), or asks the managed-identity endpoint
 */
export function createTokenCredential(credential: GraphCredentialConfig, authorityHost: string): TokenCredential {
  const known = (KNOWN_AUTHORITY_HOSTS as readonly string[]).includes(new URL(authorityHost).hostname);
  const options = { authorityHost, disableInstanceDiscovery: !known };
  switch (credential.kind) {
    case 'client-secret':
      return new ClientSecretCredential(credential.tenantId, credential.clientId, credential.clientSecret.reveal(), options);
    case 'client-certificate':
      return new ClientCertificateCredential(credential.tenantId, credential.clientId, { certificatePath: credential.certificatePath }, options);
    case 'managed-identity':
      return credential.clientId ? new ManagedIdentityCredential({ clientId: credential.clientId }) : new ManagedIdentityCredential();
  }
}
