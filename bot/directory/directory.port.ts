/**
 * Directory lookup port: a person's contact details from their directory
 * profile, to prefill registration (issue #3). Off by default.
 *
 * The Microsoft Graph adapter reads `GET /users/{id}?$select=mail,mobilePhone`
 * (Graph API: Get user). A person can always correct what it returns.
 */
export interface DirectoryContact {
  /** Work email (`mail`), or null when the profile has none. */
  email: string | null;
  /** Mobile number as the directory holds it (`mobilePhone`), or null. */
  mobile: string | null;
}

export interface DirectoryPort {
  /**
   * Look a person up by their Entra object id.
   * @returns their contact details, or null when the directory has no such user (404)
   * @throws AppError `DIRECTORY.LOOKUP_FAILED` for any other failure (the caller carries on without)
   */
  lookup(aadObjectId: string): Promise<DirectoryContact | null>;
}
