/**
 * Where tests keep what they leave behind: process logs, screenshots, reports
 * and scratch files, all under the repository's `artifacts/` (git-ignored).
 * `ARTIFACTS_DIR` moves the whole tree (e.g. to a CI upload folder).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository root (two levels above this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The kinds of artifact, each in its own sub-directory. */
export const ArtifactKinds = {
  logs: 'logs',
  screenshots: 'screenshots',
  reports: 'reports',
  playground: 'playground',
  tmp: 'tmp',
} as const;
export type ArtifactKind = (typeof ArtifactKinds)[keyof typeof ArtifactKinds];

/**
 * Root of the artifacts tree.
 *
 * @returns absolute path: `$ARTIFACTS_DIR` when set, else `<repo>/artifacts`
 */
export function artifactsRoot(): string {
  const override = process.env['ARTIFACTS_DIR'];
  return override ? path.resolve(override) : path.join(REPO_ROOT, 'artifacts');
}

/**
 * Directory for one kind of artifact, created if missing.
 *
 * @param kind - one of {@link ArtifactKinds}
 * @returns absolute directory path
 */
export function artifactDir(kind: ArtifactKind): string {
  const dir = path.join(artifactsRoot(), kind);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Turn a free-form name (a test title, a process name) into a safe file name.
 *
 * @param name - any text
 * @returns 1-120 characters of `[A-Za-z0-9._-]`; `artifact` when nothing is left
 */
export function safeFileName(name: string): string {
  const cleaned = name
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+|-+$/g, '')
    .slice(0, 120);
  return cleaned.length > 0 ? cleaned : 'artifact';
}

/**
 * Path of one artifact file; its directory is created.
 *
 * @param kind - artifact kind (sub-directory)
 * @param name - file name; unsafe characters are replaced (see {@link safeFileName})
 * @returns absolute file path (the file itself is not created)
 */
export function artifactPath(kind: ArtifactKind, name: string): string {
  return path.join(artifactDir(kind), safeFileName(name));
}
