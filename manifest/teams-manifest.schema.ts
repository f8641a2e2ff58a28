/**
 * Offline validation of a Teams app manifest against Microsoft's JSON schema, as
 * shipped in the npm package `@microsoft/app-manifest` (no download at run time).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import Ajv from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

/**
 * The manifest schema version this app targets.
 *
 * NOTE: 1.29 is the newest version in `@microsoft/app-manifest` 1.1.2 that
 * Microsoft's manifest reference lists as generally available (June 2026); the
 * package also carries 1.30 and devPreview, which the Teams client is not
 * documented to accept for an app uploaded to a tenant. Change it here and in
 * manifest.json together (the test checks they agree).
 */
export const TEAMS_MANIFEST_VERSION = '1.29' as const;

/** One schema violation, in words a person can act on. */
export interface ManifestProblem {
  /** JSON pointer into the manifest, e.g. `/bots/0/botId` (empty for the root). */
  path: string;
  /** What the schema expects there. */
  message: string;
}

export type ManifestCheck = { ok: true } | { ok: false; problems: ManifestProblem[] };

/**
 * The path of a schema file in the installed `@microsoft/app-manifest` package.
 *
 * @param version - manifest version, e.g. `1.29`
 * @returns the absolute path of `build/json-schemas/teams/v{version}/MicrosoftTeams.schema.json`
 */
export function teamsManifestSchemaPath(version: string = TEAMS_MANIFEST_VERSION): string {
  const require = createRequire(import.meta.url);
  const packageRoot = path.dirname(require.resolve('@microsoft/app-manifest/package.json'));
  return path.join(packageRoot, 'build', 'json-schemas', 'teams', `v${version}`, 'MicrosoftTeams.schema.json');
}

const compiled = new Map<string, ValidateFunction>();

function validator(version: string): ValidateFunction {
  let validate = compiled.get(version);
  if (!validate) {
    const schema = JSON.parse(readFileSync(teamsManifestSchemaPath(version), 'utf8')) as object;
    // The schema is draft-04 and uses `format: uri`; it is not written for ajv's
    // strict mode (e.g. `additionalProperties` without `type: object`), so strict is off.
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    validate = ajv.compile(schema);
    compiled.set(version, validate);
  }
  return validate;
}

/**
 * Validate a manifest against the Teams manifest JSON schema of its version.
 *
 * @param manifest - the parsed manifest.json
 * @param version - schema version to check against; defaults to {@link TEAMS_MANIFEST_VERSION}
 * @returns `{ ok: true }`, or every problem ajv found (path and message)
 * @throws Error when the schema file for `version` is not in the installed package
 */
export function checkTeamsManifest(manifest: unknown, version: string = TEAMS_MANIFEST_VERSION): ManifestCheck {
  const validate = validator(version);
  if (validate(manifest)) return { ok: true };
  const problems = (validate.errors ?? []).map((e) => ({
    path: e.instancePath,
    message: `${e.message ?? 'is not valid'}${e.params && Object.keys(e.params).length > 0 ? ` ${JSON.stringify(e.params)}` : ''}`,
  }));
  return { ok: false, problems };
}
